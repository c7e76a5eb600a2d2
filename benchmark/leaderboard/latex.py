"""The `latex` report format (`leaderboard --format latex`): the leaderboard's main tables as booktabs tables
for a paper (`<results_dir>/leaderboard.tex`, one `table` float per stream table; `\\input{leaderboard.tex}`
with `\\usepackage{booktabs}` in the preamble). Cells are mean ± std over the variant's runs; the best mean of
each column (highest, or lowest for memory and the metrics registered lower-is-better such as forgetting) is
bold, ties included; analysis tables (ground truth used on purpose) are not ranked and bold nothing.
"""
from __future__ import annotations

import math

from benchmark.leaderboard.statistics import StreamTable
from benchmark.leaderboard.table import (Column, Leaderboard, best_values, human_bytes, is_best, main_columns, split_note,
                                         table_title)

# characters LaTeX reads as commands, and the non-ASCII ones our labels use
LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                 "λ": r"$\lambda$", "α": r"$\alpha$", "τ": r"$\tau$", "·": r"$\cdot$", "–": "--", "±": r"$\pm$",
                 "—": "---", "…": r"\ldots{}"}


def escape(text: str) -> str:
    return "".join(LATEX_ESCAPES.get(character, character) for character in str(text))


def _score(stat: tuple[float, float, int], best: bool) -> str:
    mean, std, _ = stat
    if math.isnan(mean):
        return "--"
    value = rf"\mathbf{{{mean:.1f}}}" if best else f"{mean:.1f}"
    return f"${value}$" if math.isnan(std) else f"${value} \\pm {std:.1f}$"


# the columns of `--format latex` without --columns: a portrait article page with booktabs (\\small)
LATEX_COLUMNS = ["variant", "model", "miou_final", "miou_avg_incremental", "miou_forgetting_max", "memory", "n"]
LABEL_WIDTH = {1: "3cm", 2: "2.2cm"}  # the wrapped label columns' width, by how many there are (variant, model)
TEXT_COLUMNS = ("variant", "model")  # wrapped (p{...}, ragged right), the rest one line


def _breakable(text: str) -> str:
    """Escaped, with breaks allowed after / _ , (long method keys wrap instead of running over)."""
    out = escape(text)
    for token in ("/", r"\_", ","):
        out = out.replace(token, token + r"\allowbreak{}")
    return out


def _cell(column: Column, row: dict, best: dict[str, float]) -> str:
    if column.key in TEXT_COLUMNS:
        return r"\raggedright " + _breakable(column.cell(row))
    if column.field is None:
        return escape(column.cell(row))
    mean, bold = row[column.field][0], is_best(row, column, best)
    if column.key == "memory":
        text = escape(human_bytes(mean)) if not math.isnan(mean) else "--"
        return rf"\textbf{{{text}}}" if bold else text
    return _score(row[column.field], bold)


def latex_table(table: StreamTable, board: Leaderboard) -> str:
    with_model = len({row["model"] for row in table.rows}) > 1
    columns = [c for c in board.select(main_columns(table), LATEX_COLUMNS) if with_model or c.key != "model"]
    best = best_values(table, columns)
    wrapped = sum(c.key in TEXT_COLUMNS for c in columns)
    spec = "".join(f"p{{{LABEL_WIDTH.get(wrapped, '2cm')}}}" if c.key in TEXT_COLUMNS else "r" if c.numeric else "l"
                   for c in columns)
    header = [escape(c.title[:1].upper() + c.title[1:]) if c.key in TEXT_COLUMNS else
              "$n$" if c.key == "n" else escape(c.title) for c in columns]
    lines = [
        f"% {table_title(table)}, stream definition {table.definition}"
        + (f", stream hash {table.split_hash}" if table.split_hash else "") + ": written by "
        "`python -m benchmark leaderboard --format latex`; needs \\usepackage{booktabs}",
        r"\begin{table}[t]", r"\centering", r"\small",
        rf"\caption{{{escape(table_title(table))}{', analysis runs (ground truth used on purpose)' if table.analysis else ''}: "
        r"mean $\pm$ std over each variant's $n$ runs (seeds $\times$ class orders), scores in percent"
        + ("" if table.analysis else "; best in bold") + (f". {escape(split_note(table))}" if table.split_hash else "")
        + "}",
        rf"\label{{tab:{table.slug}}}",
        r"\begin{tabular}{" + spec + "}", r"\toprule",
        " & ".join(header) + r" \\", r"\midrule",
    ]
    end = r" \tabularnewline" if columns and columns[-1].key in TEXT_COLUMNS else r" \\"  # \\ is ragged's there
    lines += [" & ".join(_cell(c, row, best) for c in columns) + end for row in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def latex_document(board: Leaderboard) -> str:
    """Every table, ranked ones first, ready for \\input."""
    return "\n".join(latex_table(table, board) for table in board.tables)
