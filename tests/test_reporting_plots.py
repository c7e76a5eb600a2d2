"""Plots: hand-made inputs for what the figures show, and a demo run producing readable, non-empty PNGs."""
import io
import json

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from benchmark.reporting.leaderboard import main as leaderboard_main
from benchmark.reporting.plots import class_iou_changes, forgetting_figure, matrix_figure


def test_class_iou_changes_hand_computed():
    # rows: ground truth, columns: prediction. 3 classes: C_0 = {0, 1}, C_1 = {2}.
    # After step 0: class 0 IoU 4 / 4 = 100; class 1 IoU 2 / (4 + 2 - 2) = 50.
    after_step0 = np.array([[4, 0, 0], [0, 2, 2], [0, 0, 0]])
    # After step 1: class 0 IoU 2 / (4 + 2 - 2) = 50; class 1 IoU 3 / (4 + 3 - 3) = 75.
    after_step1 = np.array([[2, 0, 2], [0, 3, 1], [0, 0, 5]])
    changes = class_iou_changes([after_step0, after_step1], [[0, 1], [2]])
    assert [(c, s) for c, s, _, _ in changes] == [(0, 0), (1, 0)]  # most forgotten first; C_1 cannot be forgotten
    assert changes[0][2:] == pytest.approx((100.0, 50.0))
    assert changes[1][2:] == pytest.approx((50.0, 75.0))


def _render(figure) -> np.ndarray:
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3]  # (H, W, 3)


def _pixel(figure, pixels, x, y):
    axes = figure.axes[0]
    px, py = axes.transData.transform((x, y))
    return pixels[int(round(pixels.shape[0] - py)), int(round(px))]


def test_matrix_heatmap_leaves_nan_cells_blank_and_colours_scores():
    matrix = np.array([[80.0, np.nan], [10.0, 50.0]])
    figure = matrix_figure(matrix, "toy", step_sizes=[2, 3])
    pixels = _render(figure)
    assert tuple(_pixel(figure, pixels, 1.3, -0.3)) == (255, 255, 255)  # R[0][1] is NaN: blank
    assert len(set(map(tuple, [_pixel(figure, pixels, j + 0.3, t - 0.3) for t, j in ((0, 0), (1, 0), (1, 1))]))) == 3
    texts = sorted(t.get_text() for t in figure.axes[0].texts)
    assert texts == ["10.0", "50.0", "80.0"]


def test_forgetting_figure_shows_only_classes_that_lost_iou():
    figure = forgetting_figure([(0, 0, 100.0, 30.0), (1, 0, 50.0, 75.0)], ["wall", "sky"], "toy")
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert labels == ["wall (step 0)"]
    empty = forgetting_figure([(1, 0, 50.0, 75.0)], ["wall", "sky"], "toy")
    assert [t.get_text() for t in empty.axes[0].texts] == ["no class lost IoU"]


def test_demo_run_writes_plots_and_leaderboard_links_them(run_demo, tmp_path):
    run_dir, summary = run_demo("method=knnclip", "stream.num_steps=2", "eval.max_images=8",
                                "stream.max_train_images_per_step=12")
    for name in ("matrix_miou.png", "forgetting_classes.png"):
        png = run_dir / "plots" / name
        image = np.asarray(Image.open(io.BytesIO(png.read_bytes())).convert("L"))
        assert image.shape[0] >= 250 and image.shape[1] >= 400, (name, image.shape)
        assert image.std() > 10, name  # not a blank canvas
    results = run_dir.parents[2]
    assert leaderboard_main([f"results_dir={results}"]) == 0
    markdown = (results / "LEADERBOARD.md").read_text()
    curves = results / "plots"
    assert [p.name for p in curves.glob("*.png")] and all(p.stat().st_size > 10_000 for p in curves.glob("*.png"))
    assert "plots/demo_4steps-v1-" in markdown and "/plots/matrix_miou.png)" in markdown
    assert json.loads((run_dir / "manifest.json").read_text())["hardware"]["cpu_cores"] >= 1
