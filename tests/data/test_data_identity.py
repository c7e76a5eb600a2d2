"""Complete data and identities that mean what they say: a file missing on disk fails the run (or is skipped and
recorded), the validation set a run was scored on is in its manifest, the stream hash covers the dataset and
the panoptic flag, and cached class lists follow the label files."""
import json
import shutil
import warnings

import numpy as np
import pytest
import tifffile

from benchmark.config import load_config
from benchmark.errors import DataError
from benchmark.runner import run_stream
from streams.builder import build_stream, classes_per_image, open_dataset

SMALL = ("method=zeroshot", "stream.num_steps=2", "eval.max_images=6", "stream.max_train_images_per_step=4",
         "quiet=true")


@pytest.fixture
def demo_copy(demo_root, tmp_path):
    """A copy of the generated demo (secret included) whose files a test may delete."""
    root = tmp_path / "data"
    shutil.copytree(demo_root, root)
    return root, next(p for p in root.glob("covseg_demo_*") if p.is_dir())


def _run(root, results, *overrides):
    return run_stream(load_config([f"data.root={root}", f"results_dir={results}", *SMALL, *overrides]))


def test_a_missing_validation_image_fails_the_run_naming_the_file(demo_copy, tmp_path):
    root, demo = demo_copy
    victim = demo / "images" / "validation" / "demo_val_00002.jpg"
    victim.unlink()
    with pytest.raises(DataError) as caught:
        _run(root, tmp_path / "results")
    message = str(caught.value)
    assert str(victim) in message and "data.on_error=skip" in message and "\n" not in message
    assert not (tmp_path / "results").exists()  # refused before the run folder is created


def test_skip_records_the_left_out_images_and_the_validation_set(demo_root, demo_copy, tmp_path):
    root, demo = demo_copy
    complete = json.loads((_run(demo_root, tmp_path / "a") / "manifest.json").read_text())["data"]  # same images
    assert complete["validation_images"] == 6 and complete["skipped"] == {"val": [], "train": []}
    (demo / "images" / "validation" / "demo_val_00002.jpg").unlink()
    (demo / "annotations" / "training" / "demo_train_00007.tif").unlink()  # a training label map
    run_dir = _run(root, tmp_path / "b", "data.on_error=skip")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    data = manifest["data"]
    assert data["on_error"] == "skip" and data["validation_images"] == 5
    assert data["skipped"] == {"val": ["demo_val_00002"], "train": ["demo_train_00007"]}
    assert data["validation_digest"] != complete["validation_digest"]
    scored = np.load(run_dir / "stats" / "step_001.npz")["image_ids"].tolist()
    assert scored == [f"demo_val_{i:05d}" for i in (0, 1, 3, 4, 5)]
    assert open_dataset("demo", "train", root, on_error="skip").classes_present(7).size == 0  # out of the stream


def test_stream_hash_covers_the_dataset_and_the_panoptic_flag(demo_root):
    hashes = {}
    for name in ("demo_4steps", "demo_panoptic_4steps"):
        cfg = load_config([f"stream={name}"])
        hashes[name] = build_stream(cfg.stream, open_dataset(cfg.stream.dataset, "train", demo_root)).hash
    assert hashes["demo_4steps"] != hashes["demo_panoptic_4steps"]


def test_fwt_baseline_refuses_a_panoptic_baseline_for_a_semantic_run(demo_root, tmp_path, capsys):
    from benchmark.__main__ import main

    semantic = _run(demo_root, tmp_path, "stream.num_steps=2")
    panoptic = _run(demo_root, tmp_path, "stream=demo_panoptic_4steps", "stream.num_steps=2")
    assert main(["report", str(semantic), "--fwt-baseline", str(semantic)]) == 0
    capsys.readouterr()
    assert main(["report", str(semantic), "--fwt-baseline", str(panoptic)]) == 2
    assert "demo_panoptic_4steps" in capsys.readouterr().err
    fewer_images = _run(demo_root, tmp_path, "stream.num_steps=2", "eval.max_images=5")
    assert main(["report", str(semantic), "--fwt-baseline", str(fewer_images)]) == 2
    assert "other validation images" in capsys.readouterr().err


def test_cached_class_lists_follow_the_label_files_and_their_checksum(demo_copy, tmp_path):
    root, demo = demo_copy
    cache = tmp_path / "cache"
    train = open_dataset("demo", "train", root)
    first = classes_per_image(train, cache)
    label = demo / "annotations" / "training" / "demo_train_00000.tif"
    tifffile.imwrite(label, np.full_like(tifffile.imread(label), 39))  # re-prepared: one class only
    assert classes_per_image(open_dataset("demo", "train", root), cache)[0] == [39] != first[0]
    path = next(cache.glob("classes_*.json"))
    data = json.loads(path.read_text())
    data["classes"][1] = [0, 1, 2, 3]  # edited without its checksum
    path.write_text(json.dumps(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = classes_per_image(open_dataset("demo", "train", root), cache)
    assert again[1] == first[1] and sum("checksum mismatch" in str(w.message) for w in caught) == 1
