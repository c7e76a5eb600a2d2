"""Plots: hand-made inputs for what the figures show, and a demo run producing readable, non-empty PNGs."""
import io
import json

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex, to_rgba_array
from PIL import Image

from benchmark.leaderboard.command import main as leaderboard_main
from benchmark.evaluation.summary import class_iou_changes
from benchmark.run.plots import forgetting_figure, matrix_figure
from run_folders import KNN_DEFAULTS, make_run


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


def _variants(count: int) -> list[dict]:
    """`count` distinct method configurations, some with long labels."""
    knn = [{**KNN_DEFAULTS, "k": k} for k in range(1, count)]
    knn[0] = {**KNN_DEFAULTS, "k": 1, "embedder": "dinov2_vits14", "embedder_input_size": 448,
              "index": "IVF1024,PQ128x4fs", "vote": "uniform"}
    return [{"name": "zeroshot"}, *knn][:count]


def _boxes_outside_canvas(figure) -> list[str]:
    """The legends, titles, caption, axis labels and tick labels that reach beyond the figure's canvas."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    canvas_box = figure.bbox
    artists = [figure._suptitle, figure._supxlabel, *figure.legends]
    for axes in figure.axes:
        low, high = sorted(axes.get_ylim())
        ticks = [label for label in axes.get_yticklabels() if low <= label.get_position()[1] <= high]  # drawn ones
        artists += [axes.get_legend(), axes.title, axes.xaxis.label, axes.yaxis.label, *ticks]
    outside = []
    for artist in artists:
        if artist is None or not artist.get_visible() or (hasattr(artist, "get_text") and not artist.get_text()):
            continue
        box = artist.get_window_extent(renderer)
        if (box.x0 < canvas_box.x0 - 1 or box.y0 < canvas_box.y0 - 1 or box.x1 > canvas_box.x1 + 1
                or box.y1 > canvas_box.y1 + 1):
            outside.append(f"{type(artist).__name__} {getattr(artist, 'get_text', lambda: '')()!r}: {box} vs {canvas_box}")
    return outside


def test_twenty_variants_fit_the_canvas_with_one_style_each(tmp_path):
    """The issue's 12-variant leaderboard cut legends and titles at the edges and repeated colours: with 20
    variants every legend, title, caption and label lies within each figure, and each variant keeps one
    (colour, marker) pair, distinct from every other, in every figure."""
    from benchmark.leaderboard.figures import leaderboard_styles, table_figures
    from benchmark.leaderboard.runs import read_runs
    from benchmark.leaderboard.statistics import stream_tables

    root = tmp_path / "results"
    for i, method in enumerate(_variants(20)):
        run = make_run(root, f"v{i:02d}", method, 5.0 + 3 * i, memory=(0, 10 ** (3 + i % 6)), forgetting=i % 7)
        summary = json.loads((run / "summary.json").read_text())
        summary["old_new"] = {"miou": {"old": [None, 2.0 + i], "new": [10.0 + i, 4.0 + i]}}
        (run / "summary.json").write_text(json.dumps(summary))
    tables = stream_tables(read_runs(root)[0])
    styles = leaderboard_styles(tables)
    assert len(set(styles.values())) == 20
    figures = table_figures(tables[0], styles)
    assert set(figures) == {"miou", "curves", "pareto", "forgetting"}
    for name, figure in figures.items():
        assert _boxes_outside_canvas(figure) == [], name
        assert tables[0].definition not in figure.get_suptitle()  # the hash is no title
        assert tables[0].definition in figure._supxlabel.get_text()  # ... it is in the caption
    colours, markers = {}, {}
    for name in ("miou", "curves", "pareto"):
        legend = figures[name].axes[-1].get_legend()
        for text, handle in zip(legend.get_texts(), legend.legend_handles):
            colour = handle.get_color() if hasattr(handle, "get_color") else handle.get_facecolor()
            colours.setdefault(text.get_text(), set()).add(to_hex(to_rgba_array(colour)[0]))
            if hasattr(handle, "get_marker"):  # lines (errorbar handles do not say)
                markers.setdefault(text.get_text(), set()).add(handle.get_marker())
    assert len(colours) == 21 and all(len(c) == 1 for c in colours.values())  # 20 variants + the Pareto front
    assert len(markers) >= 20 and all(len(m) == 1 for m in markers.values())
