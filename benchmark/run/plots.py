"""PNG figures of a run and of a stream, readable at a glance.

Per run (into <run>/plots/, from the numbers benchmark.evaluation.summary derives from the raw statistics):
    matrix_<metric>.png     R[t][j] as an annotated heatmap (rows: after step t; columns: classes of step j)
    forgetting_classes.png  per-class IoU when a class was first learned vs after the last step, for the
                            classes that lost the most
The leaderboard's figures (one line or bar per variant) are drawn by benchmark.leaderboard.figures.

Figures are drawn on matplotlib's Agg canvas without pyplot (no global state, no display needed) and
written atomically.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from benchmark.io import atomic_write_bytes

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn (commands that draw none start faster)
    from matplotlib.figure import Figure

METRIC_LABELS = {"miou": "mIoU", "pq": "PQ"}
MAX_ANNOTATED_CELLS = 24  # matrices with more steps than this are drawn without numbers in the cells
FORGOTTEN_CLASSES = 15  # classes shown in forgetting_classes.png


def new_figure(**kwargs) -> Figure:
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def save_figure(figure: Figure, path: Path, tight: bool = False) -> Path:
    """The figure as a PNG; `tight`: cropped to (and grown to) everything drawn, legends outside the axes included."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_figure(buffer, format="png", **({"bbox_inches": "tight", "pad_inches": 0.08}
                                                                   if tight else {}))
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
                    class_names: Sequence[str], changes: Sequence[tuple[int, int, float, float]] | None
                    ) -> list[Path]:
    """The per-run figures into <run_dir>/plots/; returns their paths. `changes`: the classes' IoU changes
    (benchmark.evaluation.summary.class_iou_changes), None for a run without steps."""
    plots_dir = Path(run_dir) / "plots"
    name = f"{summary['method']} on {summary['stream']}"
    sizes = [len(c) for c in step_classes]
    paths = []
    for metric, rows in summary["matrices"].items():
        matrix = np.array(rows, dtype=float)  # None (NaN in JSON) -> nan
        title = f"{name}: {METRIC_LABELS.get(metric, metric)} R[t][j]"
        paths.append(save_figure(matrix_figure(matrix, title, metric, sizes), plots_dir / f"matrix_{metric}.png"))
    if changes is not None:
        title = f"{name}: classes that lost the most IoU"
        paths.append(save_figure(forgetting_figure(changes, class_names, title), plots_dir / "forgetting_classes.png"))
    return paths
