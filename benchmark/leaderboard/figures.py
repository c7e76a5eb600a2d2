"""The leaderboard's figures, per stream table, into <results_dir>/plots/:

    <slug>-miou_seen.png (-pq_seen)   the score on S_t after each step, one line per row (variant)
    <slug>-miou_seen_previous_last.png  mIoU on all seen / previous / last classes after each step, side by side
    <slug>-pareto.png                 final mIoU vs memory after the last step, with the Pareto front
    <slug>-<label>.png                per stream metric registered with a `figure` (forgetting): its value per
                                      variant as bars, best at the top

Every variant keeps one colour and one marker in every figure of every build (`variant_styles`: derived from a
stable hash of the variant, well-separated colours for up to 20 variants, distinct pairs for 140). Lines and
markers at 0 stay visible above the axis. Legends sit outside the axes, titles are wrapped to the figure's width and the
stream's definition hash goes into a caption line under the axes; constrained layout keeps all of them on the
canvas, and figures are saved with a tight bounding box on top of that.
"""
from __future__ import annotations

import hashlib
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from benchmark.evaluation.stream_metrics import StreamMetric, stream_metrics
from benchmark.leaderboard.runs import step_groups
from benchmark.leaderboard.statistics import StreamTable, curve
from benchmark.leaderboard.table import split_note, table_title
from benchmark.run.plots import METRIC_LABELS, new_figure, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # 7 markers x 20 colours: distinct pairs for 140 variants
LEGEND_FONT = 8
LEGEND_ROWS = 24  # legend entries per column before a second column starts
LABEL_WIDTH = 42  # characters per legend line; longer labels wrap


@dataclass(frozen=True)
class Style:
    color: tuple
    marker: str


# twenty well-separated colours (no two closer than 0.23 in RGB): tab10's, then ten picked greedily from
# matplotlib's qualitative maps to lie farthest from those taken, none light enough to fade on white
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#e7298a", "#393b79", "#6baed6", "#1b9e77", "#74c476", "#c5b0d5", "#c49c94", "#d6616b",
           "#a6761d", "#66a61e")


def palette() -> list[tuple]:
    from matplotlib.colors import to_rgba

    return [to_rgba(color) for color in PALETTE]


def _digest(key) -> int:
    text = " · ".join(map(str, key)) if isinstance(key, tuple) else str(key)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def variant_styles(keys: Sequence) -> dict:
    """One (colour, marker) per key, derived from the key itself (a stable hash of it), not from its rank: a
    variant keeps its colour and marker in every build whatever the other variants are, unless two of them want
    the same colour. Then the one with the smaller hash keeps it and the other takes the next free colour of the
    palette (deterministic); only past 20 variants do colours repeat, never with the same marker (140 pairs)."""
    colors = palette()
    taken: set[int] = set()
    pairs: set[tuple[int, int]] = set()
    styles = {}
    for key in sorted(set(keys), key=lambda k: (_digest(k), str(k))):
        digest = _digest(key)
        color, marker = digest % len(colors), (digest // len(colors)) % len(MARKERS)
        unused = len(taken) < len(colors)  # a colour of its own while there are some left
        candidates = [((color + i) % len(colors), (marker + j) % len(MARKERS))
                      for i in range(len(colors)) for j in range(len(MARKERS))]
        color, marker = next(((c, m) for c, m in candidates if (c, m) not in pairs and not (unused and c in taken)),
                             (color, marker))  # past 140 variants pairs repeat
        taken.add(color)
        pairs.add((color, marker))
        styles[key] = Style(colors[color], MARKERS[marker])
    return {key: styles[key] for key in keys}


def row_key(row: dict) -> tuple:
    """What a variant is across the tables of one leaderboard: its label and model."""
    return row["label"], row["model"]


def _legend_label(text: str) -> str:
    return "\n  ".join(textwrap.wrap(text, LABEL_WIDTH)) or text


def _wrap_title(text: str, width_inches: float, fontsize: float = 10) -> str:
    characters = max(30, int(width_inches * 72 / (0.6 * fontsize)))  # a character is about 0.6 em wide
    return "\n".join(textwrap.wrap(text, characters))


def _legend_size(labels: Sequence[str]) -> tuple[float, float]:
    """(width, height) in inches a right-hand legend of `labels` takes at LEGEND_FONT."""
    lines = [line for label in labels for line in _legend_label(label).splitlines()]
    columns = max(1, -(-len(labels) // LEGEND_ROWS))
    longest = max((len(line) for line in lines), default=0)
    return columns * (0.6 + longest * 0.6 * LEGEND_FONT / 72), len(lines) / columns * 0.19 + 0.4


def _finish(figure: Figure, title: str, caption: str, handles: list, labels: list[str]) -> Figure:
    """Title (wrapped), caption line and a legend right of the last axes, all inside the canvas (constrained
    layout makes room for an axes' legend, unlike for a figure legend beside a title)."""
    width = figure.get_figwidth()
    figure.suptitle(_wrap_title(title, width), fontsize=10)
    figure.supxlabel(_wrap_title(caption, width, 7), fontsize=7, color="0.35")
    if handles:
        figure.axes[-1].legend(handles, [_legend_label(label) for label in labels], loc="upper left",
                               bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=LEGEND_FONT, frameon=False,
                               ncols=max(1, -(-len(labels) // LEGEND_ROWS)))
    return figure


def _sized_figure(axes_width: float, axes_height: float, labels: Sequence[str]) -> Figure:
    legend_width, legend_height = _legend_size(labels)
    return new_figure(figsize=(axes_width + legend_width, max(axes_height, legend_height + 1.2)),
                      layout="constrained")


def curves_figure(panels: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], styles: dict[str, Style],
                  title: str, caption: str, metric: str = "miou") -> Figure:
    """Side by side, one panel per class group (e.g. all seen / previous / last classes; one panel: the score on
    S_t), one line per variant with a band of ± std over runs. `styles`: by the curves' names."""
    label = METRIC_LABELS.get(metric, metric)
    names = list(dict.fromkeys(name for curves in panels.values() for name in curves))
    figure = _sized_figure(4.4 * len(panels) + 0.8, 4.2, names)
    axes_list = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    top, handles = 10.0, {}
    for axes, (panel, curves) in zip(axes_list, panels.items()):
        longest = 1
        for name, (mean, std) in curves.items():
            mean, std = np.asarray(mean, dtype=float), np.nan_to_num(np.asarray(std, dtype=float))  # (steps,)
            steps = np.arange(len(mean))
            longest = max(longest, len(mean))
            style = styles[name]
            handles[name], = axes.plot(steps, mean, marker=style.marker, markersize=5, linewidth=1.6,
                                       color=style.color)
            if std.any():
                axes.fill_between(steps, mean - std, mean + std, color=style.color, alpha=0.12, linewidth=0)
            if np.isfinite(mean + std).any():
                top = max(top, float(np.nanmax(mean + std)))
        axes.set_xticks(range(longest))
        axes.set_xlabel("after learning step t")
        if len(panels) > 1:
            axes.set_title(panel, fontsize=9)
        axes.grid(alpha=0.3)
    axes_list[0].set_ylabel(f"{label} (%)" if len(panels) > 1 else f"{label} on $S_t$ (%)")
    upper = min(100.0, top * 1.1 + 1)
    axes_list[0].set_ylim(-0.03 * upper, upper)  # a line at 0 shows above the axis, not under it
    return _finish(figure, title, caption, [handles[n] for n in names], names)


def pareto_figure(points: Sequence[tuple[str, float, float, float, float]], styles: dict[str, Style], title: str,
                  caption: str) -> Figure:
    """Final score (y) against memory after the last step (x, log scale; 0 kept) per variant, with ± std error
    bars over runs; the variants no other one beats on both (more score, less memory) are joined by the Pareto
    front. points: (name, memory mean, memory std, score mean, score std)."""
    points = [p for p in points if np.isfinite(p[3])]
    names = [p[0] for p in points]
    figure = _sized_figure(5.6, 4.4, names + ["Pareto front"])
    axes = figure.add_subplot()
    handles = []
    for name, memory, memory_std, score, score_std in points:
        style = styles[name]
        handles.append(axes.errorbar(memory, score, xerr=np.nan_to_num(memory_std), yerr=np.nan_to_num(score_std),
                                     fmt=style.marker, markersize=7, capsize=3, color=style.color))
    front = sorted((m, s) for _, m, _, s, _ in points
                   if not any(s2 >= s and m2 <= m and (s2, m2) != (s, m) for _, m2, _, s2, _ in points))
    labels = list(names)
    if len(front) > 1:
        handles.append(axes.plot(*zip(*front), color="0.5", linestyle="--", linewidth=1, zorder=0)[0])
        labels.append("Pareto front")
    axes.set_xscale("symlog", linthresh=1000)  # logarithmic above 1 kB, linear below: a method storing nothing sits at 0
    axes.set_xlim(left=-400)  # room for a marker at 0
    largest = max([m + np.nan_to_num(ms) for _, m, ms, _, _ in points] + [1e3])
    ticks = [0] + [10.0 ** k for k in range(3, int(np.ceil(np.log10(largest))) + 1)]
    units = {3: "1 kB", 4: "10 kB", 5: "100 kB", 6: "1 MB", 7: "10 MB", 8: "100 MB", 9: "1 GB", 10: "10 GB"}
    axes.set_xticks(ticks, ["0"] + [units.get(int(np.log10(t)), f"1e{int(np.log10(t))} B") for t in ticks[1:]])
    axes.set_xlabel("memory after the last step (log scale above 1 kB)")
    axes.set_ylabel("final mIoU (%)")
    axes.grid(alpha=0.3, which="both")
    return _finish(figure, title, caption, handles, labels)


def bar_figure(bars: Sequence[tuple[str, float, float, int]], styles: dict[str, Style], title: str, caption: str,
               metric: StreamMetric) -> Figure:
    """A stream metric per variant, best first (at the top): mean over runs with ± std error bars (none for a
    single run), the value beside each bar and the variant's marker at its end. bars: (name, mean, std, n)."""
    sign = -1 if metric.higher_is_better else 1
    bars = sorted((b for b in bars if np.isfinite(b[1])), key=lambda b: (sign * b[1], b[0]))
    labels = [_legend_label(b[0]) for b in bars]
    label_width = max((len(line) for label in labels for line in label.splitlines()), default=0) * 0.6 * 8 / 72
    lines = sum(len(label.splitlines()) for label in labels)
    figure = new_figure(figsize=(5.8 + label_width, 1.9 + 0.3 * max(len(bars), lines * 0.75, 1)), layout="constrained")
    axes = figure.add_subplot()
    positions = np.arange(len(bars))[::-1]  # the best at the top
    for y, (name, mean, std, n) in zip(positions, bars):
        style = styles[name]
        axes.barh(y, mean, xerr=None if np.isnan(std) else std, capsize=3, color=style.color, alpha=0.85, height=0.7)
        axes.plot([mean], [y], marker=style.marker, color="black", markerfacecolor=style.color, markersize=6,
                  linestyle="none")
        axes.annotate(f"{mean:.1f}" + ("" if np.isnan(std) else f" ± {std:.1f}"),
                      (max(mean, 0) + (0 if np.isnan(std) else std), y), xytext=(6, 0), textcoords="offset points",
                      va="center", fontsize=8)
    axes.set_yticks(positions, labels, fontsize=8)
    axes.set_ylim(-0.6, len(bars) - 0.4)
    axes.axvline(0, color="0.3", linewidth=0.8)
    right = max([b[1] + np.nan_to_num(b[2]) for b in bars] + [1.0])
    axes.set_xlim(min([0.0] + [b[1] - np.nan_to_num(b[2]) for b in bars]) * 1.1, right * 1.35 + 1)
    axes.set_xlabel(f"{metric.figure} ({'higher' if metric.higher_is_better else 'lower'} is better)")
    axes.grid(axis="x", alpha=0.3)
    return _finish(figure, title, caption, [], [])


def _row_name(row: dict, with_model: bool) -> str:
    return row["label"] + (f" · {row['model']}" if with_model else "") + f" (n={row['n_runs']})"


def table_figures(table: StreamTable, styles: dict[tuple, Style]) -> dict[str, Figure]:
    """The figures of one stream table by name (miou, pq, curves, pareto, and the label of each stream metric
    registered with a `figure`); `styles` by `row_key`."""
    with_model = len({row["model"] for row in table.rows}) > 1
    by_name = {_row_name(row, with_model): styles[row_key(row)] for row in table.rows}
    heading = table_title(table)
    caption = (f"stream definition {table.definition}" + (f", stream hash {table.split_hash}" if table.split_hash else "")
               + "; mean ± std over each variant's n runs (seeds × class orders); leaderboard.csv lists the config hashes"
               + (f". {split_note(table)}" if table.split_hash else ""))
    figures = {}
    for metric in ("miou", "pq"):
        curves = {_row_name(row, with_model): row["curves"][metric] for row in table.rows if metric in row["curves"]}
        if curves:
            figures[metric] = curves_figure({"S_t": curves}, by_name, f"{heading}: {METRIC_LABELS[metric]} on all "
                                            "classes seen so far after each step", caption, metric)
    seen, previous, last = ("all classes seen so far ($S_t$)", "classes of earlier steps ($S_{t-1}$)",
                            "classes of step t ($C_t$)")
    panels = {seen: {}, previous: {}, last: {}}
    for row in table.rows:
        name = _row_name(row, with_model)
        if "miou" in row["curves"]:
            panels[seen][name] = row["curves"]["miou"]
        for group, panel in (("previous", previous), ("last", last)):
            values = curve(row["runs"], "miou", lambda run, g=group: step_groups(run.summary).get("miou", {}).get(g))
            if np.isfinite(values[0]).any():
                panels[panel][name] = values
    if any(panels.values()):
        figures["curves"] = curves_figure({k: v for k, v in panels.items() if v}, by_name,
                                          f"{heading}: mIoU after each step", caption)
    points = [(_row_name(row, with_model), row["memory_bytes"][0], row["memory_bytes"][1], *row["miou_final"][:2])
              for row in table.rows]
    if any(np.isfinite(p[3]) for p in points):
        figures["pareto"] = pareto_figure(points, by_name, f"{heading}: final mIoU vs memory", caption)
    for metric in stream_metrics():
        if metric.figure and metric.scores:
            bars = [(_row_name(row, with_model), *row[f"{metric.scores[0]}_{metric.name}"]) for row in table.rows]
            if any(np.isfinite(b[1]) for b in bars):
                figures[metric.label] = bar_figure(bars, by_name, f"{heading}: {metric.label}", caption, metric)
    return figures


# figure name -> file name (a stream metric's bar chart: its label, characters other than [A-Za-z0-9_.-] as _)
FILE_NAMES = {"miou": "miou_seen", "pq": "pq_seen", "curves": "miou_seen_previous_last", "pareto": "pareto"}


def file_name(figure: str) -> str:
    return FILE_NAMES.get(figure) or re.sub(r"[^A-Za-z0-9_.-]+", "_", figure)


def leaderboard_styles(tables: list[StreamTable]) -> dict[tuple, Style]:
    """The styles of every variant of the leaderboard (benchmark.leaderboard.figures.variant_styles)."""
    return variant_styles(list(dict.fromkeys(row_key(row) for table in tables for row in table.rows)))


def write_curves(tables: list[StreamTable], results_dir: Path) -> dict[str, dict[str, Path]]:
    """Every table's figures as PNGs: {table slug: {figure name: path}}."""
    styles = leaderboard_styles(tables)
    files: dict[str, dict[str, Path]] = {}
    for table in tables:
        for name, figure in table_figures(table, styles).items():
            path = results_dir / "plots" / f"{table.slug}-{file_name(name)}.png"
            files.setdefault(table.slug, {})[name] = save_figure(figure, path, tight=True)
    return files
