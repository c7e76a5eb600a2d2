"""The `terminal` report format: each stream table's brief columns, aligned for a terminal (printed by
`covseg leaderboard`, the way lm-evaluation-harness prints its results)."""
from __future__ import annotations

from benchmark.leaderboard.statistics import StreamTable
from benchmark.leaderboard.table import Leaderboard, main_columns, rank_cell, table_heading

TERMINAL_LABEL = 48  # characters of a label in the terminal table (the files hold it whole)


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




def render_terminal(board: Leaderboard) -> str:
    """Every table, each followed by a blank line."""
    return "".join(text_table(table) + "\n\n" for table in board.tables)
