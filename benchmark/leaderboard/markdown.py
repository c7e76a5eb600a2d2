"""LEADERBOARD.md: the `markdown` report format, every table of the leaderboard with all its columns, links to
each run and its plots, and the runs that are not complete."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from benchmark.evaluation.stream_metrics import stream_metrics
from benchmark.leaderboard.runs import PROVENANCE_MARKS
from benchmark.leaderboard.statistics import StreamTable
from benchmark.leaderboard.table import (ANALYSIS_TITLE, Leaderboard, link, main_columns, marks, rank_cell, split_note,
                                         table_title)

# figure name -> caption (a stream metric's bar chart: "<its label> with error bars")
CAPTIONS = {"miou": "mIoU on S_t after each step", "pq": "PQ on S_t after each step",
            "curves": "mIoU on seen, previous and last classes after each step", "pareto": "final mIoU vs memory"}


def _table_lines(table: StreamTable, board: Leaderboard) -> list[str]:
    results_dir, class_file = board.results_dir, board.class_files.get(table.slug)
    lines = [f"{'###' if table.analysis else '##'} {table_title(table)}", ""]
    orders = "; ".join(f"order_seed {order}: `{', '.join(sorted(map(str, hashes)))}`"
                       for order, hashes in table.hashes_by_order().items())
    lines += [*([split_note(table), ""] if table.split_hash else []),
              f"Stream definition `{table.definition}`" + (f", only stream hash `{table.split_hash}`"
                                                           if table.split_hash else "")
              + f"; stream hash per class order: {orders}.", ""]
    for name, path in board.figures.get(table.slug, {}).items():
        lines += [f"![{CAPTIONS.get(name, f'{name} with error bars')}]({link(path, results_dir)})", ""]
    columns = board.select(main_columns(table))
    header = ["#", *[c.title for c in columns], "runs", "plots"]
    alignment = ["---:", *["---:" if c.numeric else "---" for c in columns], "---", "---"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(alignment) + "|"]
    for rank, row in enumerate(table.rows, 1):
        runs = " ".join(f"[s{r.config.get('seed')}/o{r.order_seed}]({link(r.path, results_dir)}/)" + marks(issues)
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


def render_markdown(board: Leaderboard) -> str:
    """LEADERBOARD.md: every table with all columns, links to each run and its plots, the provenance marks
    explained and the runs that are not complete."""
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    total = sum(len(t.runs) for t in board.tables)
    strict, skipped = board.strict_excluded, board.skipped
    legend = "".join(f"{m.label} = {m.description}, " for m in stream_metrics() if m.description)
    lines = [
        "# Leaderboard", "",
        f"Built {now} by `python -m benchmark leaderboard{' --strict' if strict is not None else ''}` "
        f"from {total} complete run(s)"
        + (f" of stream `{board.stream}`" if board.stream else "")
        + f" ({len(skipped)} incomplete run(s) ignored{', listed at the end' if skipped else ''}"
        + (f"; {strict} run(s) without clean provenance left out by --strict" if strict is not None else "")
        + "). Scores in percent: mean ± sample std over the runs of a row "
        "(seeds × class orders), n = distinct runs (repeats of one seed and class order count once: the latest). "
        + legend + "after the last step T: old / new = mIoU on C_0 / C_1..C_T (MiB's and PLOP's old and new "
        "classes), previous / last = mIoU on S_{T-1} / C_T; [protocol X] = a CSS paper's protocol (README, "
        "Protocols). memory = method state after the last step; "
        "time/step = learn + evaluation, apart for runs whose per-image features came mostly from the disk cache "
        "(warm) and the others (cold). Plots: the first run of the row. provenance: `ok` when every run of the "
        "row ran committed, registered, unchanged method code; marks are explained below the tables. "
        "[leaderboard.html](leaderboard.html) holds all of it in one file, with every run's matrix.", "",
    ]
    for table in board.ranked:
        lines += _table_lines(table, board)
    if board.analysis:
        lines += [f"## {ANALYSIS_TITLE}", "",
                  "These runs gave the method ground truth on purpose (manifest `protocol.ground_truth_access`), "
                  "for analysis; they are not ranked and not comparable with the tables above.", ""]
        for table in board.analysis:
            lines += _table_lines(table, board)
    used = {issue for t in board.tables for row in t.rows for issue in row["provenance"]}
    if used:
        lines += ["Provenance marks:", ""]
        lines += [f"- {mark} {issue}: {why}" for issue, (mark, why) in PROVENANCE_MARKS.items() if issue in used]
        lines += ["", "`python -m benchmark leaderboard --strict` leaves marked runs out.", ""]
    lines += _incomplete_lines(skipped, board.results_dir)
    return "\n".join(lines)
