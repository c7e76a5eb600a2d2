"""PNG figures of a run and of a stream, readable at a glance.

Per run (written by RunWriter.finish into <run>/plots/, recomputed from the raw statistics):
    matrix_<metric>.png     R[t][j] as an annotated heatmap (rows: after step t; columns: classes of step j)
    forgetting_classes.png  per-class IoU when a class was first learned vs after the last step, for the
                            classes that lost the most
Per stream (written by the leaderboard): mIoU on S_t after each step, one line per method configuration.

Figures are drawn on matplotlib's Agg canvas without pyplot (no global state, no display needed) and
written atomically.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from benchmark.evaluation.semantic import gt_present, per_class_iou
from benchmark.io import atomic_write_bytes

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn (commands that draw none start faster)
    from matplotlib.figure import Figure

METRIC_LABELS = {"miou": "mIoU", "pq": "PQ"}
MAX_ANNOTATED_CELLS = 24  # matrices with more steps than this are drawn without numbers in the cells
FORGOTTEN_CLASSES = 15  # classes shown in forgetting_classes.png


def new_figure(**kwargs) -> Figure:
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def save_figure(figure: Figure, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def matrix_figure(matrix: np.ndarray, title: str, metric: str = "miou",
                  step_sizes: Sequence[int] | None = None) -> Figure:
    """Heatmap of R (T+1, T+1) in percent on a fixed 0-100 scale, so figures of different runs compare;
    NaN cells (classes not yet seen) stay blank."""
    matrix = np.asarray(matrix, dtype=float)  # (steps evaluated, steps)
    rows, cols = matrix.shape
    figure = new_figure(figsize=(max(5.0, 0.75 * cols + 2.8), max(3.8, 0.55 * rows + 2.0)), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(np.ma.masked_invalid(matrix), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    axes.set_facecolor("white")
    label = METRIC_LABELS.get(metric, metric)
    figure.colorbar(image, ax=axes, label=f"{label} (%)", fraction=0.05, pad=0.02)
    if max(rows, cols) <= MAX_ANNOTATED_CELLS:
        for t, j in zip(*np.nonzero(np.isfinite(matrix))):
            value = matrix[t, j]
            axes.text(j, t, f"{value:.1f}", ha="center", va="center", fontsize=9,
                      color="black" if value > 60 else "white")
    column_labels = [f"C{j}" if step_sizes is None else f"C{j}\n{step_sizes[j]} classes" for j in range(cols)]
    axes.set_xticks(range(cols), column_labels, fontsize=8)
    axes.set_yticks(range(rows), [str(t) for t in range(rows)], fontsize=8)
    axes.set_xlabel("classes of step j")
    axes.set_ylabel("after learning step t")
    axes.set_title(title, fontsize=10)
    return figure


def class_iou_changes(confusions: Sequence[np.ndarray], step_classes: Sequence[Sequence[int]]
                      ) -> list[tuple[int, int, float, float]]:
    """(class id, step j that taught it, IoU % after step j, IoU % after the last step) for every class learned
    before the last step with ground truth in validation, largest drop first."""
    last = len(confusions) - 1
    final_iou = 100 * np.nan_to_num(per_class_iou(confusions[last]), nan=0.0)
    present = gt_present(confusions[last])
    changes = []
    for step, classes in enumerate(step_classes[:last]):
        first_iou = 100 * np.nan_to_num(per_class_iou(confusions[step]), nan=0.0)
        changes += [(int(c), step, float(first_iou[c]), float(final_iou[c])) for c in classes if present[c]]
    return sorted(changes, key=lambda change: (change[3] - change[2], change[0]))


def forgetting_figure(changes: Sequence[tuple[int, int, float, float]], class_names: Sequence[str], title: str,
                      count: int = FORGOTTEN_CLASSES) -> Figure:
    """Dumbbell chart of the (at most `count`) classes that lost the most IoU: when learned -> after the last step."""
    lost = [change for change in changes if change[3] < change[2]]
    shown = lost[:count][::-1]  # largest drop at the top
    figure = new_figure(figsize=(7.5, max(2.6, 0.34 * len(shown) + 1.8)), layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title + (f"\n({len(shown)} of the {len(lost)} classes that lost IoU, of {len(changes)} learned "
                            "before the last step)" if shown else ""), fontsize=10)
    if not shown:
        axes.text(0.5, 0.5, "no class lost IoU" if changes else "no class learned before the last step",
                  ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
        return figure
    for y, (_, _, first, final) in enumerate(shown):
        axes.plot([first, final], [y, y], color="0.6", linewidth=2, zorder=1)
        change = f"{final - first:+.1f}".replace("-", "\u2212")
        axes.annotate(change, (first, y), xytext=(7, 0), textcoords="offset points", va="center", ha="left",
                      fontsize=8, color="0.3")
    axes.scatter([c[2] for c in shown], range(len(shown)), color="tab:blue", s=36, zorder=2,
                 label="after the step that taught it")
    axes.scatter([c[3] for c in shown], range(len(shown)), color="tab:red", marker="D", s=30, zorder=2,
                 label="after the last step")
    axes.set_yticks(range(len(shown)), [f"{class_names[c]} (step {s})" for c, s, _, _ in shown], fontsize=8)
    axes.set_ylim(-0.6, len(shown) - 0.4)
    axes.set_xlim(0, min(100.0, max(c[2] for c in shown) * 1.2 + 2))
    axes.set_xlabel("IoU (%)")
    axes.grid(axis="x", alpha=0.3)
    figure.legend(loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return figure


def write_run_plots(run_dir: Path, summary: dict, step_classes: Sequence[Sequence[int]],
                    class_names: Sequence[str], confusions: Sequence[np.ndarray]) -> list[Path]:
    """The per-run figures into <run_dir>/plots/; returns their paths."""
    plots_dir = Path(run_dir) / "plots"
    name = f"{summary['method']} on {summary['stream']}"
    sizes = [len(c) for c in step_classes]
    paths = []
    for metric, rows in summary["matrices"].items():
        matrix = np.array(rows, dtype=float)  # None (NaN in JSON) -> nan
        title = f"{name}: {METRIC_LABELS.get(metric, metric)} R[t][j]"
        paths.append(save_figure(matrix_figure(matrix, title, metric, sizes), plots_dir / f"matrix_{metric}.png"))
    if confusions:
        changes = class_iou_changes(confusions, step_classes)
        title = f"{name}: classes that lost the most IoU"
        paths.append(save_figure(forgetting_figure(changes, class_names, title), plots_dir / "forgetting_classes.png"))
    return paths


def seen_curves_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, metric: str = "miou") -> Figure:
    """One line per method configuration: mean score on S_t after each step t, a band of ± std over runs."""
    label = METRIC_LABELS.get(metric, metric)
    figure = new_figure(figsize=(7.5, 4.5), layout="constrained")
    axes = figure.add_subplot()
    top = 10.0
    for name, (mean, std) in curves.items():
        mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)  # (steps,)
        steps = np.arange(len(mean))
        line, = axes.plot(steps, mean, marker="o", linewidth=2, label=name)
        band = np.nan_to_num(std)
        if band.any():
            axes.fill_between(steps, mean - band, mean + band, color=line.get_color(), alpha=0.2, linewidth=0)
        if np.isfinite(mean + band).any():
            top = max(top, float(np.nanmax(mean + band)))
    longest = max((len(mean) for mean, _ in curves.values()), default=1)
    axes.set_xticks(range(longest))
    axes.set_ylim(0, min(100.0, top * 1.12 + 1))
    axes.set_xlabel("after learning step t")
    axes.set_ylabel(f"{label} on $S_t$ (%)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best", framealpha=0.9)
    return figure


def _method_colors(names: Sequence[str]) -> dict[str, tuple]:
    """One distinct colour per name, stable in the order given (tab10, then tab20 for more than ten)."""
    from matplotlib import colormaps

    palette = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: palette(i % palette.N) for i, name in enumerate(names)}


def comparison_curves_figure(panels: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], title: str,
                             metric: str = "miou") -> Figure:
    """Side by side, one panel per class group (e.g. all seen / old / new classes), one line per method
    configuration with a band of ± std over runs; one colour per configuration across panels, one legend."""
    label = METRIC_LABELS.get(metric, metric)
    names = list(dict.fromkeys(name for curves in panels.values() for name in curves))
    colors = _method_colors(names)
    figure = new_figure(figsize=(4.2 * len(panels) + 0.6, 4.4 + 0.22 * len(names)), layout="constrained")
    axes_list = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    top = 10.0
    for axes, (panel, curves) in zip(axes_list, panels.items()):
        longest = 1
        for name, (mean, std) in curves.items():
            mean, std = np.asarray(mean, dtype=float), np.nan_to_num(np.asarray(std, dtype=float))  # (steps,)
            steps = np.arange(len(mean))
            longest = max(longest, len(mean))
            axes.plot(steps, mean, marker="o", linewidth=2, color=colors[name], label=name)
            if std.any():
                axes.fill_between(steps, mean - std, mean + std, color=colors[name], alpha=0.18, linewidth=0)
            if np.isfinite(mean + std).any():
                top = max(top, float(np.nanmax(mean + std)))
        axes.set_xticks(range(longest))
        axes.set_xlabel("after learning step t")
        axes.set_title(panel, fontsize=10)
        axes.grid(alpha=0.3)
    axes_list[0].set_ylabel(f"{label} (%)")
    axes_list[0].set_ylim(0, min(100.0, top * 1.1 + 1))
    figure.suptitle(title, fontsize=10)
    handles, labels = axes_list[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(3, len(names)), fontsize=8, frameon=False)
    return figure


def pareto_figure(points: Sequence[tuple[str, float, float, float, float]], title: str) -> Figure:
    """Final score (y) against memory after the last step (x, log scale; 0 kept) per method configuration, with ± std
    error bars over runs; the configurations no other one beats on both (more score, less memory) are joined
    by the Pareto front. points: (name, memory mean, memory std, score mean, score std)."""
    points = [p for p in points if np.isfinite(p[3])]
    colors = _method_colors([p[0] for p in points])
    figure = new_figure(figsize=(7.5, 4.6 + 0.22 * len(points)), layout="constrained")
    axes = figure.add_subplot()
    for name, memory, memory_std, score, score_std in points:
        axes.errorbar(memory, score, xerr=np.nan_to_num(memory_std), yerr=np.nan_to_num(score_std), fmt="o",
                      markersize=8, capsize=4, color=colors[name], label=name)
    front = sorted((m, s) for _, m, _, s, _ in points
                   if not any(s2 >= s and m2 <= m and (s2, m2) != (s, m) for _, m2, _, s2, _ in points))
    if len(front) > 1:
        axes.plot(*zip(*front), color="0.5", linestyle="--", linewidth=1, zorder=0, label="Pareto front")
    axes.set_xscale("symlog", linthresh=1000)  # logarithmic above 1 kB, linear below: a method storing nothing sits at 0
    axes.set_xlim(left=-400)  # room for a marker at 0
    largest = max([m + np.nan_to_num(ms) for _, m, ms, _, _ in points] + [1e3])
    ticks = [0] + [10.0 ** k for k in range(3, int(np.ceil(np.log10(largest))) + 1)]
    units = {3: "1 kB", 4: "10 kB", 5: "100 kB", 6: "1 MB", 7: "10 MB", 8: "100 MB", 9: "1 GB", 10: "10 GB"}
    axes.set_xticks(ticks, ["0"] + [units.get(int(np.log10(t)), f"1e{int(np.log10(t))} B") for t in ticks[1:]])
    axes.set_xlabel("memory after the last step (log scale above 1 kB)")
    axes.set_ylabel("final mIoU (%)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3, which="both")
    figure.legend(loc="outside lower center", ncols=min(3, len(points) + 1), fontsize=8, frameon=False)
    return figure


def forgetting_bars_figure(bars: Sequence[tuple[str, float, float, int]], title: str) -> Figure:
    """Forgetting per method configuration: mean over runs with ± std error bars (none for a single run),
    the value beside each bar (the names carry n); lower is better. bars: (name, mean, std, n)."""
    bars = [b for b in bars if np.isfinite(b[1])]
    colors = _method_colors([b[0] for b in bars])
    figure = new_figure(figsize=(7.5, 1.6 + 0.45 * max(len(bars), 1)), layout="constrained")
    axes = figure.add_subplot()
    positions = np.arange(len(bars))[::-1]  # first configuration at the top
    for y, (name, mean, std, n) in zip(positions, bars):
        axes.barh(y, mean, xerr=None if np.isnan(std) else std, capsize=4, color=colors[name], alpha=0.85)
        axes.annotate(f"{mean:.1f}" + ("" if np.isnan(std) else f" ± {std:.1f}"),
                      (max(mean, 0) + (0 if np.isnan(std) else std), y), xytext=(5, 0), textcoords="offset points",
                      va="center", fontsize=8)
    axes.set_yticks(positions, [b[0] for b in bars], fontsize=8)
    axes.axvline(0, color="0.3", linewidth=0.8)
    right = max([b[1] + np.nan_to_num(b[2]) for b in bars] + [1.0])
    axes.set_xlim(min([0.0] + [b[1] - np.nan_to_num(b[2]) for b in bars]) * 1.1, right * 1.35 + 1)
    axes.set_xlabel("forgetting (max, Chaudhry): mIoU points lost on earlier steps' classes\n(lower is better)")
    axes.set_title(title, fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    return figure
