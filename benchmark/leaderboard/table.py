"""The leaderboard's table model, which every report format renders: the `Leaderboard` (its stream tables of
benchmark.leaderboard.statistics and what was written beside them), the main table's `Column`s and the cell
formats the formats share."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from benchmark.leaderboard.runs import PROVENANCE_MARKS
from benchmark.leaderboard.statistics import MetricColumn, StreamTable, metric_columns

ANALYSIS_TITLE = "Analysis runs (ground truth used on purpose)"


@dataclass
class Leaderboard:
    """What a report format renders: the stream tables (ranked ones first, then analysis tables) and the files
    written beside them, with the command's options."""

    tables: list[StreamTable]
    results_dir: Path
    skipped: list[tuple[Path, str]]  # (folder, reason) of the runs that are not complete
    stream: str | None = None  # the stream= filter
    strict_excluded: int | None = None  # None without --strict, else how many complete runs it left out
    figures: dict[str, dict[str, Path]] = field(default_factory=dict)  # table slug -> figure name -> PNG
    class_tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # table slug -> per-class final IoU
    class_files: dict[str, Path] = field(default_factory=dict)  # table slug -> that table's CSV
    columns: list[str] | None = None  # --columns: the column keys every format shows, in this order; None: its own

    def select(self, columns: list["Column"], default: list[str] | None = None) -> list["Column"]:
        """`columns` narrowed to --columns (in its order), else to a format's `default` keys, else all of them."""
        keys = self.columns if self.columns is not None else default
        if keys is None:
            return columns
        by_key = {c.key: c for c in columns}
        return [by_key[key] for key in keys if key in by_key]

    @property
    def ranked(self) -> list[StreamTable]:
        return [t for t in self.tables if not t.analysis]

    @property
    def analysis(self) -> list[StreamTable]:
        return [t for t in self.tables if t.analysis]


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


def shown_metrics(table: StreamTable) -> list[MetricColumn]:
    """The stream metric columns some row of the table has a value for."""
    return [column for column in metric_columns() if any(row[column.field][2] for row in table.rows)]


def table_title(table: StreamTable) -> str:
    """`demo_4steps (version 1)`, and for a table split by the stream's data which draw or data it holds:
    `demo_4steps (version 1) — draw 3f2a1b2c… (public draw)`."""
    return f"{table.name} (version {table.version})" + (f" — {table.draw}" if table.draw else "")


def split_note(table: StreamTable) -> str:
    """For a table split by the stream's data, the line that says the split tables differ only in it; else ""."""
    if not table.draw:
        return ""
    if table.draw.startswith("draw"):
        return (f"The tables of {table.name} (version {table.version}) differ only in the stream's draw: the demo "
                "images drawn with another secret (data.demo_secret, or another data root's own). Compare numbers "
                "within one table only.")
    return (f"The tables of {table.name} (version {table.version}) differ only in the data the stream was built "
            "from (other files under data.root give another stream hash). Compare numbers within one table only.")


def table_identity(table: StreamTable) -> str:
    """`stream definition D[, stream hash H][ — analysis runs, ...]`: what the title leaves out."""
    return (f"stream definition {table.definition}" + (f", stream hash {table.split_hash}" if table.split_hash else "")
            + (" — analysis runs, ground truth used on purpose, not ranked" if table.analysis else ""))


def table_heading(table: StreamTable) -> str:
    return f"{table_title(table)}, {table_identity(table)}"


@dataclass(frozen=True)
class Column:
    """One column of a stream table's main table, shared by Markdown, HTML and the terminal (`brief`)."""

    key: str  # its name for --columns
    title: str
    cell: Callable[[dict], str]  # row -> plain text
    numeric: bool = False  # right-aligned
    brief: bool = False  # also in the terminal table
    field: str | None = None  # the row's (mean, std, n) it shows, for the formats that bold the best
    higher_is_better: bool = True


def main_columns(table: StreamTable) -> list[Column]:
    """The columns every rendering of the main table shows, in order (after the rank). A new column goes here."""
    scores = [Column(c.field, c.title, lambda row, field=c.field: format_score(row[field], row["n_runs"]),
                     numeric=True, brief=True, field=c.field, higher_is_better=c.metric.higher_is_better)
              for c in shown_metrics(table)]
    return [
        Column("variant", "variant", lambda row: row["label"], brief=True),
        Column("model", "model", lambda row: row["model"], brief=True), *scores,
        Column("ci", "final mIoU 95% CI (images)", lambda row: format_interval(row["miou_final_ci"])),
        Column("paired", "Δ final mIoU (paired)", lambda row: format_difference(row["paired"])),
        Column("memory", "memory", lambda row: human_bytes(row["memory_bytes"][0]), numeric=True, brief=True,
               field="memory_bytes", higher_is_better=False),
        Column("time", "time/step", lambda row: time_cell(row), numeric=True, brief=True),
        Column("n", "n", lambda row: str(row["n_runs"]), numeric=True, brief=True),
        Column("config", "config", lambda row: row["config_hash"]),
        Column("provenance", "provenance", lambda row: provenance_cell(row)),
    ]


def column_keys() -> list[str]:
    """Every name --columns takes (a stream metric's column is its CSV field, e.g. miou_final)."""
    return ["variant", "model", *[c.field for c in metric_columns()], "ci", "paired", "memory", "time", "n",
            "config", "provenance"]


def best_values(table: StreamTable, columns: list[Column]) -> dict[str, float]:
    """Per column with a `field`: the best of its rounded means as shown (highest, or lowest where lower is
    better), so ties are all bold; none when fewer than two differ, and none in an analysis table."""
    best = {}
    for column in columns:
        finite = {round(row[column.field][0], 1) for row in table.rows if column.field
                  and not math.isnan(row[column.field][0])}
        if len(finite) > 1 and not table.analysis:
            best[column.key] = max(finite) if column.higher_is_better else min(finite)
    return best


def is_best(row: dict, column: Column, best: dict[str, float]) -> bool:
    mean = row[column.field][0] if column.field else math.nan
    return column.key in best and not math.isnan(mean) and round(mean, 1) == best[column.key]


def rank_cell(table: StreamTable, rank: int) -> str:
    return "–" if table.analysis else str(rank)


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


def marks(issues: list[str]) -> str:
    return "".join(dict.fromkeys(PROVENANCE_MARKS[issue][0] for issue in issues))


