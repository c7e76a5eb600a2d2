"""Report formats: each one registered renderer over the table model (benchmark.leaderboard.table.Leaderboard).

    register_format("json", render, file="leaderboard.json")   # render(board: Leaderboard) -> str

A format with a `file` is written into the results folder, one without is printed. `default` formats come with
every `covseg leaderboard` (markdown: LEADERBOARD.md, csv: leaderboard.csv, html: leaderboard.html, terminal:
printed); the others when asked for with `--format NAME` (latex: leaderboard.tex). A module on COVSEG_PATH (or
an entry point's) can register one; the leaderboard imports those before it reads the option.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from benchmark.leaderboard.csv_table import render_csv
from benchmark.leaderboard.html_report import render_html
from benchmark.leaderboard.latex import latex_document
from benchmark.leaderboard.markdown import render_markdown
from benchmark.leaderboard.table import Leaderboard
from benchmark.leaderboard.terminal import render_terminal
from benchmark.registry import Registry


@dataclass(frozen=True)
class ReportFormat:
    name: str
    render: Callable[[Leaderboard], str]
    file: str | None = None  # written into the results folder; None: printed
    default: bool = False  # part of every leaderboard; else only with --format NAME


REPORT_FORMATS: Registry[ReportFormat] = Registry("report format")


def register_format(name: str, render: Callable[[Leaderboard], str], *, file: str | None = None,
                    default: bool = False) -> ReportFormat:
    """Register `render(board) -> str` as the report format `name` (`covseg leaderboard --format NAME`)."""
    return REPORT_FORMATS.register(name, ReportFormat(name, render, file, default))


def report_formats(requested: list[str]) -> list[ReportFormat]:
    """The default formats, then the `requested` ones (names checked), each once, in registration order."""
    chosen = {REPORT_FORMATS.get(name).name for name in requested}
    return [f for f in REPORT_FORMATS.entries() if f.default] + [
        f for f in REPORT_FORMATS.entries() if f.name in chosen and not f.default]


register_format("markdown", render_markdown, file="LEADERBOARD.md", default=True)
register_format("csv", render_csv, file="leaderboard.csv", default=True)
register_format("html", render_html, file="leaderboard.html", default=True)
register_format("terminal", render_terminal, default=True)
register_format("latex", latex_document, file="leaderboard.tex")
