"""Leaderboard tables: the stream tables of benchmark.reporting.statistics as Markdown (LEADERBOARD.md) and as
one CSV line per row (leaderboard.csv), with the cell formats they share."""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from benchmark.reporting.runs import PROVENANCE_MARKS
from benchmark.reporting.statistics import METRIC_COLUMNS, StreamTable

NAN = float("nan")
ANALYSIS_TITLE = "Analysis runs (ground truth used on purpose)"
TERMINAL_LABEL = 48  # characters of a label in the terminal table (the files hold it whole)


def format_interval(interval: tuple[float, float]) -> str:
    low, high = interval
    return "–" if math.isnan(low) else f"[{low:.1f}, {high:.1f}]"


def format_difference(paired: tuple[str, tuple[float, float, int]]) -> str:
    label, (mean, std, n) = paired
    if not n:
        return "–"
    spread = "" if math.isnan(std) else f" ± {std:.1f}"
    return f"{mean:+.1f}{spread} (n={n}) vs {label}"




def human_bytes(value: float) -> str:
    if math.isnan(value):
        return "–"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def human_seconds(value: float) -> str:
    if math.isnan(value):
        return "–"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min" if value < 7200 else f"{value / 3600:.1f} h"


def shown_metrics(table: StreamTable) -> list[tuple[str, str, str]]:
    """The METRIC_COLUMNS (metric, key, title) some row of the table has a value for."""
    return [(m, k, title) for m, k, title in METRIC_COLUMNS if any(row[f"{m}_{k}"][2] for row in table.rows)]


def table_heading(table: StreamTable) -> str:
    return (f"{table.name} (version {table.version}), stream definition {table.definition}"
            + (f", stream hash {table.split_hash}" if table.split_hash else "")
            + (" — analysis runs, ground truth used on purpose, not ranked" if table.analysis else ""))


@dataclass(frozen=True)
class Column:
    """One column of a stream table's main table, shared by Markdown, HTML and the terminal (`brief`)."""

    title: str
    cell: Callable[[dict], str]  # row -> plain text
    numeric: bool = False  # right-aligned
    brief: bool = False  # also in the terminal table


def main_columns(table: StreamTable) -> list[Column]:
    """The columns every rendering of the main table shows, in order (after the rank). A new column goes here."""
    scores = [Column(title, lambda row, field=f"{m}_{k}": format_score(row[field], row["n_runs"]), numeric=True, brief=True)
              for m, k, title in shown_metrics(table)]
    return [
        Column("variant", lambda row: row["label"], brief=True),
        Column("model", lambda row: row["model"], brief=True), *scores,
        Column("final mIoU 95% CI (images)", lambda row: format_interval(row["miou_final_ci"])),
        Column("Δ final mIoU (paired)", lambda row: format_difference(row["paired"])),
        Column("memory", lambda row: human_bytes(row["memory_bytes"][0]), numeric=True, brief=True),
        Column("time/step", lambda row: time_cell(row), numeric=True, brief=True),
        Column("n", lambda row: str(row["n_runs"]), numeric=True, brief=True),
        Column("config", lambda row: row["config_hash"]),
        Column("provenance", lambda row: provenance_cell(row)),
    ]


def rank_cell(table: StreamTable, rank: int) -> str:
    return "–" if table.analysis else str(rank)


def _shorten(text: str, width: int = TERMINAL_LABEL) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def text_table(table: StreamTable) -> str:
    """The table's brief columns, aligned for a terminal (the way lm-evaluation-harness prints its results); the
    model only when the table has several."""
    with_model = len({row["model"] for row in table.rows}) > 1
    columns = [c for c in main_columns(table) if c.brief and (with_model or c.title != "model")]
    header = ["#", *[c.title for c in columns]]
    body = [[rank_cell(table, rank), *[_shorten(c.cell(row)) for c in columns]] for rank, row in enumerate(table.rows, 1)]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    aligned = [True, *[c.numeric for c in columns]]
    lines = ["  ".join(cell.rjust(width) if right else cell.ljust(width)
                       for cell, width, right in zip(line, widths, aligned)).rstrip() for line in [header, *body]]
    return "\n".join([table_heading(table), *lines[:1], "  ".join("-" * w for w in widths), *lines[1:]])


def time_cell(row: dict) -> str:
    """Mean seconds per step of the row's runs with a cold and with a warm feature cache, apart (`2.1 s cold,
    0.3 s warm`); runs that did not record it unmarked."""
    parts = [human_seconds(stats[0]) + (f" {state}" if state else "")
             for state, stats in row["seconds_per_step_by_cache"].items()]
    return ", ".join(parts) or "–"


def format_score(stat: tuple[float, float, int], row_runs: int | None = None) -> str:
    """mean ± std, with its own n when it covers fewer than the row's `row_runs` runs (e.g. excess forgetting:
    only runs with a zero-shot partner; learning gain: only runs with the initial evaluation)."""
    mean, std, n = stat
    if math.isnan(mean):
        return "–"
    text = f"{mean:.1f}" if math.isnan(std) else f"{mean:.1f} ± {std:.1f}"
    return text + (f" (n={n})" if row_runs is not None and n < row_runs else "")


def link(target: Path, base: Path) -> str:
    return target.resolve().relative_to(base.resolve()).as_posix()


def provenance_cell(row: dict) -> str:
    """`ok`, or each problem with its mark and how many of the row's runs have it (e.g. `‡ source changed since
    run (1/3)`)."""
    if not row["provenance"]:
        return "ok"
    n = row["n_runs"]
    return "; ".join(f"{PROVENANCE_MARKS[issue][0]} {issue}" + (f" ({count}/{n})" if n > 1 else "")
                     for issue, count in row["provenance"].items())


def _marks(issues: list[str]) -> str:
    return "".join(dict.fromkeys(PROVENANCE_MARKS[issue][0] for issue in issues))


def _table_lines(table: StreamTable, results_dir: Path, curve_files: dict[str, dict[str, Path]],
                 class_file: Path | None = None) -> list[str]:
    lines = [f"### {table.name} (version {table.version})" if table.analysis
             else f"## {table.name} (version {table.version})", ""]
    orders = "; ".join(f"order_seed {order}: `{', '.join(sorted(map(str, hashes)))}`"
                       for order, hashes in table.hashes_by_order().items())
    lines += [f"Stream definition `{table.definition}`"
              + (f", only stream hash `{table.split_hash}` (the data differs between runs of this definition)"
                 if table.split_hash else "") + f"; stream hash per class order: {orders}.", ""]
    captions = {"miou": "mIoU on S_t after each step", "pq": "PQ on S_t after each step",
                "curves": "mIoU on seen, previous and last classes after each step", "pareto": "final mIoU vs memory",
                "forgetting": "forgetting with error bars"}
    for name, path in curve_files.get(table.slug, {}).items():
        lines += [f"![{captions[name]}]({link(path, results_dir)})", ""]
    columns = main_columns(table)
    header = ["#", *[c.title for c in columns], "runs", "plots"]
    alignment = ["---:", *["---:" if c.numeric else "---" for c in columns], "---", "---"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(alignment) + "|"]
    for rank, row in enumerate(table.rows, 1):
        runs = " ".join(f"[s{r.config.get('seed')}/o{r.order_seed}]({link(r.path, results_dir)}/)" + _marks(issues)
                        for r, issues in zip(row["runs"], row["run_provenance"]))
        if row["superseded"]:  # repeats of a counted run (same seed, order, data): listed, not averaged
            runs += " (superseded repeats: " + " ".join(
                f"[{r.path.name}]({link(r.path, results_dir)}/)" for r in row["superseded"]) + ")"
        plots_dir = row["runs"][0].path / "plots"
        plots = " ".join(f"[{name}]({link(plots_dir / file, results_dir)})"
                         for name, file in (("R", "matrix_miou.png"), ("R PQ", "matrix_pq.png"),
                                            ("forgotten", "forgetting_classes.png"))
                         if (plots_dir / file).is_file())
        cells = [f"`{c.cell(row)}`" if c.title == "config" else c.cell(row).replace("|", "\\|") for c in columns]
        lines.append("| " + " | ".join([rank_cell(table, rank), *cells, runs, plots or "–"]) + " |")
    lines.append("")
    if class_file is not None:
        lines += [f"Final IoU per class and variant, with the step that taught each class: "
                  f"[{class_file.name}]({link(class_file, results_dir)}).", ""]
    return lines


def _incomplete_lines(skipped: list[tuple[Path, str]], results_dir: Path) -> list[str]:
    """Failed runs with their reason, then unfinished ones (running, interrupted, unreadable)."""
    failed = [(path, reason.removeprefix("failed: ")) for path, reason in skipped if reason.startswith("failed: ")]
    other = [(path, reason) for path, reason in skipped if not reason.startswith("failed: ")]
    lines = []
    for title, entries, column in (("Failed runs", failed, "reason"), ("Unfinished runs", other, "state")):
        if entries:
            lines += [f"## {title}", "", f"| run | {column} |", "|---|---|"]
            for path, text in entries:
                target, cell = link(path, results_dir), text.replace("|", "\\|")
                lines.append(f"| [{target}]({target}/) | {cell} |")
            lines.append("")
    return lines


def render_markdown(tables: list[StreamTable], results_dir: Path, curve_files: dict[str, dict[str, Path]],
                    skipped: list[tuple[Path, str]], stream_filter: str | None,
                    strict_excluded: int | None = None, class_files: dict[str, Path] | None = None) -> str:
    """`skipped`: (folder, reason) of the runs that are not complete; `strict_excluded`: None without --strict,
    else how many complete runs --strict left out; `class_files`: per table slug, its per-class table (CSV)."""
    class_files = class_files or {}
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    total = sum(len(t.runs) for t in tables)
    lines = [
        "# Leaderboard", "",
        f"Built {now} by `python -m benchmark leaderboard{' --strict' if strict_excluded is not None else ''}` "
        f"from {total} complete run(s)"
        + (f" of stream `{stream_filter}`" if stream_filter else "")
        + f" ({len(skipped)} incomplete run(s) ignored{', listed at the end' if skipped else ''}"
        + (f"; {strict_excluded} run(s) without clean provenance left out by --strict" if strict_excluded is not None
           else "")
        + "). Scores in percent: mean ± sample std over the runs of a row "
        "(seeds × class orders), n = distinct runs (repeats of one seed and class order count once: the latest). "
        "forgetting = forgetting_max (Chaudhry), BWT = backward transfer, "
        "after the last step T: old / new = mIoU on C_0 / C_1..C_T (MiB's and PLOP's old and new classes), "
        "previous / last = mIoU on S_{T-1} / C_T; [protocol X] = a CSS paper's protocol (README, Protocols). "
        "memory = method state after the last step; "
        "time/step = learn + evaluation, apart for runs whose per-image features came mostly from the disk cache "
        "(warm) and the others (cold). Plots: the first run of the row. provenance: `ok` when every run of the "
        "row ran committed, registered, unchanged method code; marks are explained below the tables. "
        "[leaderboard.html](leaderboard.html) holds all of it in one file, with every run's matrix.", "",
    ]
    ranked = [t for t in tables if not t.analysis]
    analysis = [t for t in tables if t.analysis]
    for table in ranked:
        lines += _table_lines(table, results_dir, curve_files, class_files.get(table.slug))
    if analysis:
        lines += [f"## {ANALYSIS_TITLE}", "",
                  "These runs gave the method ground truth on purpose (manifest `protocol.ground_truth_access`), "
                  "for analysis; they are not ranked and not comparable with the tables above.", ""]
        for table in analysis:
            lines += _table_lines(table, results_dir, curve_files, class_files.get(table.slug))
    used = {issue for t in tables for row in t.rows for issue in row["provenance"]}
    if used:
        lines += ["Provenance marks:", ""]
        lines += [f"- {mark} {issue}: {why}" for issue, (mark, why) in PROVENANCE_MARKS.items() if issue in used]
        lines += ["", "`python -m benchmark leaderboard --strict` leaves marked runs out.", ""]
    lines += _incomplete_lines(skipped, results_dir)
    return "\n".join(lines)


def leaderboard_frame(tables: list[StreamTable], results_dir: Path) -> pd.DataFrame:
    """The CSV: one line per row of every table, means and stds in separate columns, full provenance."""
    records = []
    for table in tables:
        hashes = sorted({str(h) for hs in table.hashes_by_order().values() for h in hs})
        for rank, row in enumerate(table.rows, 1):
            record = {
                "stream": table.name, "stream_version": table.version, "stream_definition": table.definition,
                "stream_hashes": ";".join(hashes), "section": "analysis" if table.analysis else "ranking",
                "rank": "" if table.analysis else rank, "method": row["method"], "label": row["label"],
                "config_hash": row["config_hash"], "model": row["model"], "n_runs": row["n_runs"],
                "seeds": ";".join(map(str, row["seeds"])), "order_seeds": ";".join(map(str, row["order_seeds"])),
            }
            for metric, key, _ in METRIC_COLUMNS:
                mean, std, n = row[f"{metric}_{key}"]
                record[f"{metric}_{key}_mean"], record[f"{metric}_{key}_std"], record[f"{metric}_{key}_n"] = mean, std, n
            record["miou_final_ci_low"], record["miou_final_ci_high"] = row["miou_final_ci"]
            reference, (mean, std, n) = row["paired"]
            record.update(paired_reference=reference, paired_final_diff_mean=mean, paired_final_diff_std=std,
                          paired_n=n)
            record["memory_bytes_mean"] = row["memory_bytes"][0]
            record["seconds_per_step_mean"] = row["seconds_per_step"][0]
            for state in ("cold", "warm"):
                record[f"seconds_per_step_{state}_mean"] = row["seconds_per_step_by_cache"].get(state, (NAN,))[0]
            record["git_commits"] = ";".join(row["git"])
            record["runs"] = ";".join(link(r.path, results_dir) for r in row["runs"])
            record["superseded_runs"] = ";".join(link(r.path, results_dir) for r in row["superseded"])
            record["ground_truth_access"] = row["ground_truth_access"]
            record["isolated"] = row["isolated"]
            record["provenance"] = ";".join(f"{issue}={count}" for issue, count in row["provenance"].items())
            records.append(record)
    return pd.DataFrame.from_records(records)
