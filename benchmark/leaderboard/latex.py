"""The `latex` report format (`leaderboard --format latex`): the leaderboard's main tables as booktabs tables
for a paper (`<results_dir>/leaderboard.tex`, one `table` float per stream table; `\\input{leaderboard.tex}`
with `\\usepackage{booktabs}` in the preamble). Cells are mean ± std over the variant's runs; the best mean of
each column (highest, or lowest for memory and the metrics registered lower-is-better such as forgetting) is
bold, ties included; analysis tables (ground truth used on purpose) are not ranked and bold nothing.
"""
from __future__ import annotations

import math

from benchmark.leaderboard.statistics import StreamTable
from benchmark.leaderboard.table import Leaderboard, human_bytes, shown_metrics

# characters LaTeX reads as commands, and the non-ASCII ones our labels use
LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                 "λ": r"$\lambda$", "α": r"$\alpha$", "τ": r"$\tau$", "·": r"$\cdot$", "–": "--", "±": r"$\pm$"}


def escape(text: str) -> str:
    return "".join(LATEX_ESCAPES.get(character, character) for character in str(text))


def _score(stat: tuple[float, float, int], best: bool) -> str:
    mean, std, _ = stat
    if math.isnan(mean):
        return "--"
    value = rf"\mathbf{{{mean:.1f}}}" if best else f"{mean:.1f}"
    return f"${value}$" if math.isnan(std) else f"${value} \\pm {std:.1f}$"


def _best(values: list[float], higher: bool) -> float | None:
    """The best of the rounded means as shown, so ties are all bold; None when fewer than two differ."""
    finite = [round(v, 1) for v in values if not math.isnan(v)]
    return (max(finite) if higher else min(finite)) if len(set(finite)) > 1 else None


def latex_table(table: StreamTable) -> str:
    with_model = len({row["model"] for row in table.rows}) > 1
    # (row field, title, higher is better)
    columns = [(c.field, c.title, c.metric.higher_is_better) for c in shown_metrics(table)] + [
        ("memory_bytes", "memory", False)]
    best = {} if table.analysis else {
        field: _best([row[field][0] for row in table.rows], higher) for field, _, higher in columns}
    header = ["Variant", *(["Model"] if with_model else []), *[escape(title) for _, title, _ in columns], "$n$"]
    lines = [
        f"% {table.name} (version {table.version}), stream definition {table.definition}: written by "
        "`python -m benchmark leaderboard --format latex`; needs \\usepackage{booktabs}",
        r"\begin{table}[t]", r"\centering", r"\small",
        rf"\caption{{{escape(table.name)} (version {table.version}){', analysis runs (ground truth used on purpose)' if table.analysis else ''}: "
        r"mean $\pm$ std over each variant's $n$ runs (seeds $\times$ class orders), scores in percent"
        + ("" if table.analysis else "; best in bold") + "}",
        rf"\label{{tab:{table.slug}}}",
        r"\begin{tabular}{" + "l" * (1 + with_model) + "r" * (len(columns) + 1) + "}", r"\toprule",
        " & ".join(header) + r" \\", r"\midrule",
    ]
    for row in table.rows:
        cells = [escape(row["label"]), *([escape(row["model"])] if with_model else [])]
        for field, _, _ in columns:
            mean = row[field][0]
            is_best = best.get(field) is not None and not math.isnan(mean) and round(mean, 1) == best[field]
            if field == "memory_bytes":
                text = escape(human_bytes(mean)) if not math.isnan(mean) else "--"
                cells.append(rf"\textbf{{{text}}}" if is_best else text)
            else:
                cells.append(_score(row[field], is_best))
        lines.append(" & ".join(cells + [str(row["n_runs"])]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def latex_document(board: Leaderboard) -> str:
    """Every table, ranked ones first, ready for \\input."""
    return "\n".join(latex_table(table) for table in board.tables)
