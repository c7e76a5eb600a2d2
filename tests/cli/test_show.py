"""`show`: the predictions it draws are the ones the run scored (re-predicted by the method restored from the
run's checkpoint, with the step's vocabulary), and it writes one readable PNG per image."""
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
    """One small kNN-CLIP run (two steps) for every test here."""
    from benchmark.config import load_config
    from benchmark.runner import run_stream

    return run_stream(load_config([f"data.root={demo_root}", f"results_dir={tmp_path_factory.mktemp('results')}",
                                   "quiet=true", "method=knnclip", "stream.num_steps=2", "eval.max_images=3",
                                   "stream.max_train_images_per_step=12"]))


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
    with Image.open(pictures[0]) as picture:  # four panels side by side, with room for the legend below
        assert picture.width > 3 * picture.height / 2 and len(np.unique(np.asarray(picture))) > 50
    assert "columns: image, ground truth, initial (untouched), after step 1" in capsys.readouterr().out


def test_show_says_which_steps_a_run_keeps(knn_run, tmp_path):
    with pytest.raises(UserError, match=r"keeps step 1's checkpoint .* step\(s\) 0 cannot be drawn; choose from: "
                                        r"initial, 1"):
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
    """An isolate=true run's checkpoint holds its worker's opaque state: `show` hands it to a worker made from
    the run's config (never to a load_state_dict in this process) and draws what the run scored (the columns
    `show` draws are recorded: one worker serves the whole command)."""
    from benchmark.config import data_root, load_config
    from benchmark.hosts.in_process import InProcessHost
    from benchmark.runner import run_stream
    from streams.builder import open_dataset

    run_dir = run_stream(load_config([f"data.root={demo_root}", f"results_dir={tmp_path / 'results'}", "quiet=true",
                                      "method=knnclip", "isolate=true", "stream.num_steps=2", "eval.max_images=2",
                                      "stream.max_train_images_per_step=12"]))

    def refused(self, state):
        raise AssertionError("an isolated run's checkpoint was loaded in this process")

    drawn = []

    def recorded(*args):
        drawn.append(predictions(*args))
        return drawn[-1]

    predictions = show.predictions
    monkeypatch.setattr(InProcessHost, "load_state_dict", refused)
    monkeypatch.setattr(show, "predictions", recorded)
    assert show.main([str(run_dir), "--images", "2", "--steps", "last,initial", "--out", str(tmp_path / "png")]) == 0
    assert "columns: image, ground truth, after step 1, initial (untouched)" in capsys.readouterr().out  # as asked
    cfg, manifest = show.read_run(run_dir)
    val = open_dataset(cfg.stream.dataset, "val", data_root(cfg), cfg.data.demo_seed)
    samples = [val.load(i) for i in range(2)]
    [columns] = drawn
    assert [title for title, _, _ in columns] == ["after step 1", "initial (untouched)"]
    for (title, vocab, labels), stats in zip(columns, ("step_001", "initial")):
        npz = np.load(run_dir / "stats" / f"{stats}.npz")
        for i, sample in enumerate(samples):
            assert per_image_counts(labels[i], filter_sample(sample, vocab.ids).sem_seg) == stored_counts(npz, i)
    assert len(list((tmp_path / "png").glob("*.png"))) == 2
