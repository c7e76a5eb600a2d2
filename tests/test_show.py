"""`show`: the predictions it draws are the ones the run scored (re-predicted by the method restored from the
run's checkpoints, with the step's vocabulary), every step of a run made with checkpoint.keep=all, and it writes
one readable figure per image (PNG or PDF) with the class names inside their regions."""
import numpy as np
import pytest
from PIL import Image

from benchmark.data.types import IGNORE_LABEL
from benchmark.errors import UserError
from benchmark.method import filter_sample
from benchmark import show


def per_image_counts(labels: np.ndarray, gt: np.ndarray) -> set[tuple[int, int, int, int]]:
    """(class, tp, gt pixels, predicted pixels) over the scored pixels: what the run's npz stores per image."""
    scored = gt != IGNORE_LABEL
    p, g = labels[scored], gt[scored]
    classes = np.union1d(np.unique(p), np.unique(g))
    return {(int(c), int(((p == c) & (g == c)).sum()), int((g == c).sum()), int((p == c).sum())) for c in classes}


def stored_counts(npz, image: int) -> set[tuple[int, int, int, int]]:
    rows = npz["image_index"] == image
    return set(zip(*(npz[key][rows].tolist() for key in ("image_class", "image_tp", "image_gt", "image_pred"))))


@pytest.fixture(scope="module")
def knn_run(demo_root, tmp_path_factory):
    """One small kNN-CLIP run (two steps, checkpoint.keep=last) for the tests here."""
    from benchmark.config import load_config
    from benchmark.runner import run_stream

    return run_stream(load_config([f"data.root={demo_root}", f"results_dir={tmp_path_factory.mktemp('results')}",
                                   "quiet=true", "method=knnclip", "stream.num_steps=2", "eval.max_images=3",
                                   "stream.max_train_images_per_step=12"]))


@pytest.fixture(scope="module")
def knn_run_all(demo_root, tmp_path_factory):
    """The 4-step demo stream with checkpoint.keep=all (two validation images, 12 training images per step)."""
    from benchmark.config import load_config
    from benchmark.runner import run_stream

    return run_stream(load_config([f"data.root={demo_root}", f"results_dir={tmp_path_factory.mktemp('results')}",
                                   "quiet=true", "method=knnclip", "eval.max_images=2", "checkpoint.keep=all",
                                   "stream.max_train_images_per_step=12"]))


def demo_samples(run_dir, count):
    from benchmark.config import data_root
    from streams.builder import open_dataset

    cfg, manifest = show.read_run(run_dir)
    val = open_dataset(cfg.stream.dataset, "val", data_root(cfg), cfg.data.demo_seed)
    return cfg, manifest, val, [val.load(i) for i in range(count)]


def assert_scored(run_dir, columns, samples, stats_names):
    """Each column's label maps give, per image and class, the counts the run stored for that step."""
    for (title, vocab, labels), stats in zip(columns, stats_names, strict=True):
        npz = np.load(run_dir / "stats" / f"{stats}.npz")
        for i, sample in enumerate(samples):
            assert per_image_counts(labels[i], filter_sample(sample, vocab.ids).sem_seg) == stored_counts(npz, i), \
                (title, i)


def test_show_draws_what_the_run_scored(knn_run, tmp_path, capsys):
    cfg, manifest = show.read_run(knn_run)
    from benchmark.config import data_root
    from streams.builder import open_dataset

    val = open_dataset(cfg.stream.dataset, "val", data_root(cfg), cfg.data.demo_seed)
    samples = [val.load(i) for i in range(3)]
    columns = show.predictions(cfg, manifest, knn_run, [-1, 1], samples, val.vocabulary, None)
    assert [len(vocab) for _, vocab, _ in columns] == [40, len({c for s in manifest["step_classes"] for c in s})]
    for (title, vocab, labels), stats in zip(columns, ("initial", "step_001")):
        npz = np.load(knn_run / "stats" / f"{stats}.npz")
        for i, sample in enumerate(samples):
            gt = filter_sample(sample, vocab.ids).sem_seg
            assert per_image_counts(labels[i], gt) == stored_counts(npz, i), (title, i)
    # the restored method differs from the untouched one (the checkpoint was loaded)
    assert not np.array_equal(columns[0][2][0], columns[1][2][0])

    assert show.main([str(knn_run), "--images", "2", "--out", str(tmp_path / "png")]) == 0
    pictures = sorted((tmp_path / "png").glob("*.png"))
    assert [p.name for p in pictures] == ["demo_val_00000.png", "demo_val_00001.png"]
    with Image.open(pictures[0]) as picture:  # four panels side by side
        assert picture.width > 3 * picture.height / 2 and len(np.unique(np.asarray(picture))) > 50
    assert "columns: image, ground truth, initial (untouched), after step 1" in capsys.readouterr().out


def test_show_draws_every_step_of_a_run_made_with_keep_all(knn_run_all, tmp_path, capsys):
    """--steps 0,1,2,3: four step panels (after the image and its ground truth), each the predictions of the
    method restored from that step's checkpoint, as the run scored them."""
    cfg, manifest, val, samples = demo_samples(knn_run_all, 2)
    columns = show.predictions(cfg, manifest, knn_run_all, [0, 1, 2, 3], samples, val.vocabulary, None)
    assert [title for title, _, _ in columns] == [f"after step {t}" for t in range(4)]
    assert_scored(knn_run_all, columns, samples, [f"step_{t:03d}" for t in range(4)])
    figure = show.build_figure(samples[0], columns, 0, val.vocabulary)
    assert [axis.get_title().split("\n")[0] for axis in figure.axes] == ["image", "ground truth",
                                                                        *(f"after step {t}" for t in range(4))]
    names = [text.get_text() for axis in figure.axes for text in axis.texts]
    assert names and set(names) <= set(val.vocabulary.names)  # class names written inside the regions

    assert show.main([str(knn_run_all), "--steps", "0,1,2,3", "--images", "2", "--dpi", "50",
                      "--out", str(tmp_path / "png")]) == 0
    out = capsys.readouterr().out
    assert "columns: image, ground truth, after step 0, after step 1, after step 2, after step 3" in out
    pictures = sorted((tmp_path / "png").iterdir())
    assert [p.name for p in pictures] == ["demo_val_00000.png", "demo_val_00001.png"]
    with Image.open(pictures[0]) as picture:  # six 3.2-inch panels at 50 dpi, side by side
        assert 0.85 * 6 * 3.2 * 50 < picture.width <= 6 * 3.2 * 50 + 10 and picture.height < picture.width / 4


def test_show_writes_pdfs_with_one_image_per_panel(knn_run_all, tmp_path):
    assert show.main([str(knn_run_all), "--steps", "initial,1,3", "--images", "2", "--format", "pdf",
                      "--opacity", "0.3", "--out", str(tmp_path / "pdf")]) == 0
    pdfs = sorted((tmp_path / "pdf").iterdir())
    assert [p.name for p in pdfs] == ["demo_val_00000.pdf", "demo_val_00001.pdf"]
    for pdf in pdfs:  # image, ground truth, initial, after step 1, after step 3: five raster panels
        content = pdf.read_bytes()
        assert content.startswith(b"%PDF") and content.count(b"/Subtype /Image") == 5


def test_a_step_not_kept_is_one_line_naming_checkpoint_keep(knn_run, knn_run_all, tmp_path, capsys):
    from benchmark.__main__ import main

    assert main(["show", str(knn_run), "--steps", "0,1", "--out", str(tmp_path / "png")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (f"error: {knn_run} holds the checkpoint(s) of step(s) 1 (checkpoint.keep=last), so step(s) 0 "
                    "cannot be drawn; choose from: initial, 1; runs made with checkpoint.keep=all keep every step's")
    assert main(["show", str(knn_run_all), "--steps", "2,7", "--out", str(tmp_path / "png")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.endswith("holds the checkpoint(s) of step(s) 0, 1, 2, 3 (checkpoint.keep=all), so step(s) 7 cannot "
                         "be drawn; choose from: initial, 0, 1, 2, 3")
    for option, value in (("--opacity", "1.5"), ("--dpi", "0")):
        assert main(["show", str(knn_run), option, value, "--out", str(tmp_path / "png")]) == 2
        assert f"{option} {value}" in capsys.readouterr().err
    assert not (tmp_path / "png").exists()


def test_show_says_which_steps_a_run_keeps(knn_run, tmp_path):
    with pytest.raises(UserError, match=r"holds the checkpoint\(s\) of step\(s\) 1 .* step\(s\) 0 cannot be drawn; "
                                        r"choose from: initial, 1"):
        show.main([str(knn_run), "--steps", "0,last", "--out", str(tmp_path / "png")])
    with pytest.raises(UserError, match="'first' is not a step number"):
        show.main([str(knn_run), "--steps", "first", "--out", str(tmp_path / "png")])
    with pytest.raises(UserError, match="is not a run folder"):
        show.main([str(tmp_path), "--out", str(tmp_path / "png")])
    assert not (tmp_path / "png").exists()


def test_overlay_colours_classes_and_leaves_unlabelled_pixels_dim():
    image = np.full((4, 4, 3), 200, dtype=np.uint8)
    labels = np.array([[0, 0, 5, 5]] * 3 + [[IGNORE_LABEL] * 4])
    drawn = show.overlay(image, labels)
    assert np.allclose(drawn[3], 0.5 * 200 / 255)  # unlabelled: the image, dimmed
    assert np.allclose(drawn[0, 0], 0.4 * 200 / 255 + 0.6 * np.array(show.class_colour(0)))
    assert np.allclose(drawn[0, 2], 1.0) and not np.allclose(drawn[0, 1], 1.0)  # the border between 0 and 5
    assert len({show.class_colour(c) for c in range(847)}) == 847
    assert np.allclose(show.overlay(image, labels, opacity=0.0)[0, 0], 200 / 255)  # --opacity 0: the image
    assert np.allclose(show.overlay(image, labels, opacity=1.0)[0, 0], show.class_colour(0))


def test_class_names_go_well_inside_large_regions():
    """One name per large region, at a point inside it even for a C shape (whose centroid and median point lie
    outside it); small regions get none, a class's second region only when it is large too."""
    labels = np.full((100, 100), 1)
    labels[10:90, 10:90] = 2  # a C: a square with a notch cut out of its right side
    labels[30:70, 30:90] = 1
    labels[0:5, 0:5] = 3  # 25 pixels: too small for a name
    labels[95:100, 40:60] = IGNORE_LABEL
    points = show.label_points(labels)
    assert [class_id for _, _, class_id, _ in points] == [1, 2]  # the biggest region first; none for class 3
    for x, y, class_id, area in points:
        assert labels[int(round(y)), int(round(x))] == class_id
    c_shape = next(p for p in points if p[2] == 2)
    assert labels[int(np.median(np.nonzero(labels == 2)[0])), int(np.median(np.nonzero(labels == 2)[1]))] != 2
    assert c_shape[3] == int((labels == 2).sum())
    labels[40:60, 45:55] = 2  # an island of class 2 inside the notch: 200 pixels, 2% of the image, not its largest
    assert [p[2] for p in show.label_points(labels)] == [1, 2]
    labels[35:65, 35:75] = 2  # now 1200 pixels, 12%: large enough for its own name
    assert [p[2] for p in show.label_points(labels)] == [1, 2, 2]


def test_names_that_would_cover_each_other_are_left_out():
    """Many narrow regions side by side with long names: the names written never overlap and stay inside
    the panel; the largest regions are named first."""
    from benchmark.data.types import ClassInfo, Sample, Vocabulary

    labels = np.repeat(np.arange(10), 10)[None, :].repeat(60, axis=0)  # ten 10-pixel-wide stripes
    labels[:, 90:] = 0  # stripe 0 also on the right edge: two regions of class 0
    vocabulary = Vocabulary("toy", tuple(ClassInfo(i, f"a rather long class name {i}", ()) for i in range(10)))
    sample = Sample("toy", np.full((60, 100, 3), 128, dtype=np.uint8), labels)
    figure = show.build_figure(sample, [("after step 0", vocabulary, [labels])], 0, vocabulary)
    renderer = figure.canvas.get_renderer()
    for axis in figure.axes[1:]:
        boxes = [text.get_window_extent(renderer) for text in axis.texts]
        assert 1 <= len(boxes) < 10
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
        frame = axis.get_window_extent(renderer)
        assert all(frame.x0 <= box.x0 and box.x1 <= frame.x1 for box in boxes)


def test_show_adds_the_exported_predictions_column(knn_run, tmp_path):
    """`--predictions DIR`: the base model's exported outputs classified zero-shot; exported from the run's own
    base model, over every class, they are the untouched kNN-CLIP's (its empty database: zero-shot) predictions."""
    from benchmark.config import data_root
    from benchmark.exporters.segmenter import export_predictions
    from benchmark.models import build_segmenter
    from streams.builder import open_dataset

    cfg, manifest = show.read_run(knn_run)
    val = open_dataset(cfg.stream.dataset, "val", data_root(cfg), cfg.data.demo_seed)
    export_predictions(build_segmenter(cfg.model, seed=cfg.seed), [(val, range(2))], tmp_path / "exported",
                       val.vocabulary)
    samples = [val.load(i) for i in range(2)]
    columns = show.predictions(cfg, manifest, knn_run, [-1], samples, val.vocabulary, tmp_path / "exported")
    assert [title for title, _, _ in columns] == ["initial (untouched)", "exported, zero-shot (exported)"]
    for initial, exported in zip(columns[0][2], columns[1][2]):
        assert (initial == exported).mean() > 0.99
    with pytest.raises(UserError, match="no meta.json there"):
        show.main([str(knn_run), "--predictions", str(tmp_path), "--out", str(tmp_path / "png")])


def test_show_restores_an_isolated_run_in_a_worker(demo_root, tmp_path, monkeypatch, capsys):
    """An isolate=true run's checkpoints hold its worker's opaque state: `show` hands a middle step's (a run made
    with checkpoint.keep=all) to a worker made from the run's config (never to a load_state_dict in this
    process) and draws what the run scored."""
    from benchmark.config import load_config
    from benchmark.hosts.in_process import InProcessHost
    from benchmark.runner import run_stream

    run_dir = run_stream(load_config([f"data.root={demo_root}", f"results_dir={tmp_path / 'results'}", "quiet=true",
                                      "method=knnclip", "isolate=true", "stream.num_steps=3", "eval.max_images=2",
                                      "stream.max_train_images_per_step=12", "checkpoint.keep=all"]))

    def refused(self, state):
        raise AssertionError("an isolated run's checkpoint was loaded in this process")

    monkeypatch.setattr(InProcessHost, "load_state_dict", refused)
    cfg, manifest, val, samples = demo_samples(run_dir, 2)
    columns = show.predictions(cfg, manifest, run_dir, [1, -1], samples, val.vocabulary, None)
    assert [title for title, _, _ in columns] == ["after step 1", "initial (untouched)"]  # in the order asked
    assert_scored(run_dir, columns, samples, ["step_001", "initial"])
    assert show.main([str(run_dir), "--images", "1", "--steps", "1,last", "--out", str(tmp_path / "png")]) == 0
    assert "columns: image, ground truth, after step 1, after step 2" in capsys.readouterr().out
