"""The bad-input catalogue not covered elsewhere (see README "Troubleshooting" for the full list and where
each case is tested): each gets one clear line, a non-zero exit and nothing half-written."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.config import load_config
from benchmark.data.readers import CocoPanopticFolder
from benchmark.data.types import SegmentationDataset, Vocabulary, ClassInfo
from benchmark.errors import DataError, UserError
from streams.builder import build_stream


def cli(*args: str):
    return subprocess.run([sys.executable, "-m", "benchmark", *args], capture_output=True, text=True, timeout=120)


def test_method_parameter_out_of_range_one_line(demo_root, tmp_path):
    result = cli("run", "method=knnclip", "method.k=0", f"data.root={demo_root}", f"results_dir={tmp_path}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "error: method.k=0 must be positive"
    assert not any(tmp_path.iterdir())  # nothing written: the method is built before the run folder


def test_debug_true_shows_the_traceback():
    result = cli("run", "method=knnclp", "debug=true")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_partial_data_root_names_missing_folder(tmp_path):
    (tmp_path / "ADE20K_2021_17_01" / "images_detectron2" / "training").mkdir(parents=True)
    result = cli("run", "stream=ade847_10steps", f"data.root={tmp_path}", f"results_dir={tmp_path / 'r'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "annotations_detectron2" in result.stderr or "ADE20K_2021_17_01" in result.stderr
    assert not (tmp_path / "r").exists()


class _TinyDataset(SegmentationDataset):
    """Four images whose classes are given directly (for stream-building checks)."""

    def __init__(self, classes_per_image):
        self.name, self.split = "tiny", "train"
        self.vocabulary = Vocabulary("tiny", tuple(ClassInfo(i, f"c{i}", (f"c{i}",)) for i in range(4)))
        self._classes = classes_per_image

    def __len__(self):
        return len(self._classes)

    def image_id(self, index):
        return f"img{index}"

    def classes_present(self, index):
        return np.array(self._classes[index])


def _stream_cfg(**overrides):
    cfg = load_config(["stream=demo_4steps"]).stream
    cfg.name, cfg.num_steps, cfg.order = "tiny", 2, "natural"
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def test_empty_step_is_refused_with_advice():
    dataset = _TinyDataset([[0], [1], [0, 1]])  # classes 2 and 3 (step 1) appear in no image
    with pytest.raises(UserError, match="step 1 has no training image holding its classes .*order_seed"):
        build_stream(_stream_cfg(), dataset)


def test_disjoint_mode_drops_images_with_future_classes():
    dataset = _TinyDataset([[0], [0, 2], [2, 3], [1, 3]])
    overlap = build_stream(_stream_cfg(), dataset)
    disjoint = build_stream(_stream_cfg(mode="disjoint"), dataset)
    assert overlap.train_indices == [[0, 1, 3], [1, 2, 3]]
    assert disjoint.train_indices == [[0], [1, 2, 3]]
    assert overlap.hash != disjoint.hash


@pytest.mark.parametrize("file_name", ["../outside.png", "/etc/passwd"])
def test_annotation_file_names_cannot_escape_the_data_root(tmp_path, file_name):
    (tmp_path / "images").mkdir()
    (tmp_path / "pan").mkdir()
    annotation = {"images": [{"id": 1, "file_name": "a.jpg"}],
                  "annotations": [{"image_id": 1, "file_name": file_name, "segments_info": []}], "categories": []}
    (tmp_path / "pan.json").write_text(json.dumps(annotation))
    vocab = Vocabulary("v", (ClassInfo(0, "c", ("c",)),))
    with pytest.raises(DataError, match="escapes the dataset folder"):
        CocoPanopticFolder("x", "val", tmp_path / "images", tmp_path / "pan.json", tmp_path / "pan", vocab, [1])


def test_corrupt_demo_image_named_and_skip_mode_counts(demo_root, tmp_path):
    """A corrupt validation image stops the run with its path; data.on_error=skip runs and reports it."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(demo_root, root)
    victim = sorted((next(root.glob("covseg_demo_*")) / "images" / "validation").glob("*.jpg"))[0]
    victim.write_bytes(b"not a jpeg")
    base = ["method=zeroshot", f"data.root={root}", "eval.max_images=4", "stream.num_steps=2",
            "stream.max_train_images_per_step=4", "quiet=true"]
    result = cli("run", *base, f"results_dir={tmp_path / 'a'}")
    assert result.returncode == 2 and str(victim) in result.stderr and "Traceback" not in result.stderr
    result = cli("run", *base, "data.on_error=skip", f"results_dir={tmp_path / 'b'}")
    assert result.returncode == 0, result.stderr
    assert "skipped 1 unreadable image" in result.stdout
