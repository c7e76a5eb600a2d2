"""`<results_dir>/leaderboard.html`, the `html` report format: the leaderboard as one self-contained file to
open in a browser or send around, as wide as the window. Per stream table: the main table (the Markdown table's
columns, the best value of each score column bold, rank and variant fixed when it scrolls sideways), the figures
embedded as PNG data,
per variant its runs, each with its matrix R[t][j] embedded and links to its files (summary.json,
class_scores.csv, matrix CSVs and plots, relative to results_dir as in LEADERBOARD.md), and the cross-method
per-class table (class x variant final IoU, with the step that taught the class). No script, no external
resource.
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import math
from pathlib import Path

import pandas as pd

from benchmark.leaderboard.runs import PROVENANCE_MARKS, Run
from benchmark.leaderboard.statistics import StreamTable
from benchmark.leaderboard.table import (ANALYSIS_TITLE, Leaderboard, best_values, is_best, link, main_columns, rank_cell,
                                         split_note, table_identity, table_title)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { border-bottom: 2px solid #888; background: #f6f6f6; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
.scroll { overflow-x: auto; }
table.main th:first-child, table.main td:first-child { position: sticky; left: 0; z-index: 1; background: #fff;
  box-sizing: border-box; width: 3em; min-width: 3em; }
table.main th:nth-child(2), table.main td:nth-child(2) { position: sticky; left: 3em; z-index: 1; background: #fff;
  box-shadow: 1px 0 0 #ccc; }
table.main th:first-child, table.main th:nth-child(2) { background: #f6f6f6; z-index: 2; }
table.main td { white-space: nowrap; }
table.main td:nth-child(2) { white-space: normal; overflow-wrap: anywhere; min-width: 12em; max-width: 22em; }
figure { display: inline-block; margin: 0.5em 1em 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
details { margin: 0.4em 0 1em; }
summary { cursor: pointer; font-weight: 600; }
.caption { color: #555; font-size: 0.9em; }
table.matrix td { font-size: 0.85em; }
"""


def _e(text) -> str:
    return html.escape(str(text))


def _table(header: list[str], rows: list[list[str]], numeric: set[str], css: str = "") -> str:
    """An HTML table; `rows` hold HTML already (escaped by the caller)."""
    head = "".join(f'<th class="num">{_e(h)}</th>' if h in numeric else f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{cell}</td>' if h in numeric else f"<td>{cell}</td>"
                                    for h, cell in zip(header, row)) + "</tr>" for row in rows)
    return (f'<div class="scroll"><table{f" class={css!r}" if css else ""}><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _image(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _matrix(run: Run) -> str:
    """The run's R[t][j] of mIoU (the initial row first when there is one)."""
    rows = (run.summary.get("matrices") or {}).get("miou")
    if not rows:
        return ""
    initial = (run.summary.get("initial") or {}).get("miou")
    labeled = ([("before step 0", initial)] if initial else []) + [(f"after step {t}", r) for t, r in enumerate(rows)]
    header = ["R[t][j] mIoU", *[f"C{j}" for j in range(len(rows[0]))]]
    cells = [[_e(name), *["–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}" for v in row]]
             for name, row in labeled]
    return _table(header, cells, set(header[1:]), "matrix")


def _run_details(row: dict, results_dir: Path) -> str:
    parts = []
    for run, issues in zip(row["runs"], row["run_provenance"]):
        folder = link(run.path, results_dir)
        files = [name for name in ("summary.json", "manifest.json", "class_scores.csv", "matrix_miou.csv",
                                   "matrix_pq.csv", "plots/matrix_miou.png", "plots/forgetting_classes.png")
                 if (run.path / name).is_file()]
        marks = "".join(PROVENANCE_MARKS[issue][0] for issue in issues)
        state = f", {run.feature_cache} feature cache" if run.feature_cache else ""
        parts.append(f"<p><a href=\"{_e(folder)}/\">{_e(folder)}</a>{_e(marks)} (seed {_e(run.config.get('seed'))}, "
                     f"class order {_e(run.order_seed)}{_e(state)}): "
                     + " ".join(f'<a href="{_e(folder)}/{_e(name)}">{_e(name)}</a>' for name in files) + "</p>"
                     + _matrix(run))
    if row["superseded"]:
        parts.append("<p>superseded repeats (listed, not averaged): " + " ".join(
            f'<a href="{_e(link(r.path, results_dir))}/">{_e(r.path.name)}</a>' for r in row["superseded"]) + "</p>")
    return f"<details><summary>{_e(row['label'])}: {len(row['runs'])} run(s)</summary>{''.join(parts)}</details>"


def _class_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return ""
    header = list(frame.columns)
    variants = header[3:]
    rows = [[_e(record["class_id"]), _e(record["class"]), _e(record["taught at step"]),
             *["–" if pd.isna(record[v]) else f"{record[v]:.1f}" for v in variants]]
            for record in frame.to_dict("records")]
    return (f"<details><summary>Final IoU per class and variant ({len(frame)} classes)</summary>"
            f"{_table(header, rows, {'class_id', 'taught at step', *variants})}</details>")


def _stream_section(table: StreamTable, board: Leaderboard) -> str:
    results_dir, figures = board.results_dir, board.figures.get(table.slug, {})
    classes = board.class_tables[table.slug]
    columns = board.select(main_columns(table))
    header = ["#", *[c.title for c in columns]]
    numeric = {"#", *[c.title for c in columns if c.numeric]}
    best = best_values(table, columns)

    def cell(column, row) -> str:
        text = f"<code>{_e(column.cell(row))}</code>" if column.key == "config" else _e(column.cell(row))
        return f"<strong>{text}</strong>" if is_best(row, column, best) else text

    rows = [[_e(rank_cell(table, rank)), *[cell(c, row) for c in columns]] for rank, row in enumerate(table.rows, 1)]
    captions = {"miou": "mIoU on S_t after each step", "pq": "PQ on S_t after each step",
                "curves": "mIoU on seen, previous and last classes", "pareto": "final mIoU vs memory"}
    return "".join([
        f"<h{3 if table.analysis else 2}>{_e(table_title(table))}</h{3 if table.analysis else 2}>",
        f'<p class="caption">{_e("S" + table_identity(table)[1:])}</p>',  # Stream definition ...
        f'<p class="caption">{_e(split_note(table))}</p>' if table.split_hash else "", _table(header, rows, numeric, "main"),
        "".join(_image(path, captions.get(name, name)) for name, path in figures.items() if Path(path).is_file()),
        "<h4>Runs</h4>", "".join(_run_details(row, results_dir) for row in table.rows),
        "<h4>Per class</h4>" if not classes.empty else "", _class_table(classes),
    ])


def render_html(board: Leaderboard) -> str:
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    results_dir = board.results_dir

    sections = [_stream_section(t, board) for t in board.ranked]
    if board.analysis:
        sections.append(f"<h2>{_e(ANALYSIS_TITLE)}</h2>")
        sections += [_stream_section(t, board) for t in board.analysis]
    if board.skipped:
        sections.append("<h2>Failed and unfinished runs</h2>" + _table(
            ["run", "state"], [[f'<a href="{_e(link(p, results_dir))}/">{_e(link(p, results_dir))}</a>', _e(r)]
                               for p, r in board.skipped], set()))
    total = sum(len(t.runs) for t in board.tables)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Leaderboard</title>'
            f"<style>{STYLE}</style></head><body><h1>Leaderboard</h1>"
            f'<p class="caption">Built {_e(now)} by <code>python -m benchmark leaderboard</code> from {total} complete '
            "run(s). Scores in percent: mean ± sample std over the runs of a variant (seeds × class orders), n = "
            "distinct runs. LEADERBOARD.md explains every column; leaderboard.csv and results.csv hold the numbers."
            f"</p>{''.join(sections)}</body></html>\n")
