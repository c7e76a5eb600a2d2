"""The `terminal` report format: each stream table's brief columns (or --columns), aligned for a terminal and
fitted to its width (printed by `covseg leaderboard`, the way lm-evaluation-harness prints its results): headers
go on two lines, then labels shorten, then the least important columns are dropped, and a note says which. Rows
carry their provenance marks (§ ¶ ...), and a note says which rows `--strict` would drop, as LEADERBOARD.md does.
"""
from __future__ import annotations

import os
import shutil
import sys
import textwrap

from benchmark.leaderboard.runs import PROVENANCE_MARKS
from benchmark.leaderboard.statistics import StreamTable
from benchmark.leaderboard.table import (Column, Leaderboard, main_columns, marks, rank_cell, split_note,
                                         table_heading)

TERMINAL_LABEL = 48  # characters of a label in the terminal table (the files hold it whole)
SHORT_LABEL = 28  # to fit the width, labels shorten to this, then columns are dropped, then labels go on shortening
SHORTEST_LABEL = 12
# dropped first when the table is too wide, least important first; the others stay
DROP_ORDER = ["provenance", "config", "paired", "ci", "time", "miou_last", "miou_previous", "miou_learning_gain",
              "miou_forward_transfer", "miou_bwt", "miou_excess_forgetting", "miou_new", "miou_old", "pq_final",
              "memory", "miou_avg_incremental", "model"]


def terminal_width() -> int | None:
    """COLUMNS, else the width of the terminal stdout writes to; None (no limit) when it writes to a file."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _layout(table: StreamTable, columns: list[Column], label: int, two_lines: bool) -> list[str]:
    """The table's aligned lines (header, rule, rows) with labels of at most `label` characters."""
    titles = [c.title.rsplit(" ", 1) if two_lines and " " in c.title else ["", c.title] for c in columns]
    header = [["", "#"], *titles]
    body = [[rank_cell(table, rank), *[_text(c, row, label) for c in columns]] for rank, row in enumerate(table.rows, 1)]
    widths = [max(len(cell) for cell in [*header[i], *(line[i] for line in body)]) for i in range(len(header))]
    aligned = [True, *[c.numeric for c in columns]]

    def join(cells: list[str]) -> str:
        return "  ".join(cell.rjust(width) if right else cell.ljust(width)
                         for cell, width, right in zip(cells, widths, aligned)).rstrip()

    heads = [join([h[0] for h in header])] if two_lines else []
    return [*heads, join([h[1] for h in header]), "  ".join("-" * w for w in widths), *map(join, body)]


def _text(column: Column, row: dict, label: int) -> str:
    """The cell shortened to `label` characters, with the row's provenance marks after the variant."""
    text = _shorten(column.cell(row), label)
    mark = marks(list(row["provenance"])) if column.key == "variant" else ""
    return f"{text} {mark}" if mark else text


def fitted_lines(table: StreamTable, columns: list[Column], width: int | None) -> tuple[list[str], list[Column]]:
    """The table's lines within `width` and the columns dropped for it: two-line headers first, then shorter
    labels (down to SHORT_LABEL), then columns in DROP_ORDER, then shorter labels (down to SHORTEST_LABEL)."""
    dropped: list[Column] = []
    label, two_lines = TERMINAL_LABEL, False
    while True:
        lines = _layout(table, columns, label, two_lines)
        excess = 0 if width is None else max(map(len, lines)) - width
        if excess <= 0:
            return lines, dropped
        if not two_lines:
            two_lines = True
        elif label > SHORT_LABEL:
            label = max(SHORT_LABEL, label - excess)
        elif (victim := next((c for key in DROP_ORDER for c in columns if c.key == key), None)) is not None:
            columns = [c for c in columns if c is not victim]
            dropped.append(victim)
        elif label > SHORTEST_LABEL:
            label = max(SHORTEST_LABEL, label - excess)
        else:
            return [_shorten(line, width) for line in lines], dropped


def strict_note(table: StreamTable) -> str:
    """The marks the table's rows carry, and which rows `--strict` would drop (whole, or some of their runs)."""
    used = [issue for issue in PROVENANCE_MARKS if any(issue in row["provenance"] for row in table.rows)]
    if not used:
        return ""
    whole, some = [], []
    for rank, row in enumerate(table.rows, 1):
        marked = sum(1 for issues in row["run_provenance"] if issues)
        if marked == len(row["run_provenance"]):
            whole.append(str(rank))
        elif marked:
            some.append(f"{marked} of {len(row['run_provenance'])} runs of row {rank}")
    legend = "; ".join(f"{PROVENANCE_MARKS[issue][0]} {issue}" for issue in used)
    rows = "every row" if len(whole) == len(table.rows) else f"row{'s' * (len(whole) > 1)} {', '.join(whole)}"
    drops = ([rows] if whole else []) + some
    return f"{legend}. --strict would drop {' and '.join(drops)}."


def text_table(table: StreamTable, board: Leaderboard | None = None, width: int | None = None) -> str:
    """The table's brief columns (or --columns), aligned and fitted to `width`; the model only when the table
    has several; its heading, and notes on the dropped columns and the provenance marks, wrapped to `width`."""
    with_model = len({row["model"] for row in table.rows}) > 1
    brief = [c.key for c in main_columns(table) if c.brief]
    chosen = board.select(main_columns(table), brief) if board else [c for c in main_columns(table) if c.brief]
    columns = [c for c in chosen if with_model or c.key != "model" or (board and board.columns)]
    lines, dropped = fitted_lines(table, columns, width)
    notes = [f"not shown, to fit {width} columns: {', '.join(c.title for c in dropped)} (all in LEADERBOARD.md; "
             "--columns chooses)"] if dropped else []
    notes += [note for note in [strict_note(table), split_note(table)] if note]
    wrap = (lambda text: [text]) if width is None else (lambda text: textwrap.wrap(text, width, subsequent_indent="  "))
    return "\n".join([*wrap(table_heading(table)), *lines, *(line for note in notes for line in wrap(note))])


def render_terminal(board: Leaderboard) -> str:
    """Every table, each followed by a blank line."""
    width = terminal_width()
    return "".join(text_table(table, board, width) + "\n\n" for table in board.tables)
