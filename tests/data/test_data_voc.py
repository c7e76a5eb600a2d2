"""Pascal VOC 2012 (voc_21): `prepare voc` and the reader on hand-built files in the community's layout
(VOCdevkit/VOC2012 + SegmentationClassAug + split lists; no fixture of the real release exists)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.data.datasets import build_dataset
from benchmark.data.prepare import main
from benchmark.data.types import IGNORE_LABEL
from benchmark.errors import DataError

# label maps (0 = background, 15 = person, 255 = VOC's void border); the val images are 2007_*, as in VOC
LABELS = {
    "2007_000032": np.array([[0, 0, 1, 255], [0, 15, 15, 255]]),
    "2007_000033": np.array([[20, 20, 0, 0], [255, 0, 0, 0]]),
    "2008_000002": np.array([[0, 12, 12, 0], [0, 12, 255, 0]]),
    "2008_000003": np.array([[0, 0, 0, 0], [7, 7, 7, 255]]),
}
VAL = ["2007_000032", "2007_000033"]


def write_voc2012(root: Path, labels: dict[str, np.ndarray] = LABELS, val: list[str] = VAL) -> Path:
    """The VOC 2012 release (JPEGImages, ImageSets/Segmentation/val.txt, one image without a label map) under
    root/VOCdevkit/VOC2012, and the unpacked SegmentationClassAug.zip in root/SegmentationClassAug."""
    voc = root / "VOCdevkit" / "VOC2012"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "SegmentationClassAug").mkdir()
    for image_id, label_map in labels.items():
        height, width = label_map.shape
        Image.fromarray(np.full((height, width, 3), 128, dtype=np.uint8)).save(voc / "JPEGImages" / f"{image_id}.jpg")
        Image.fromarray(label_map.astype(np.uint8)).save(root / "SegmentationClassAug" / f"{image_id}.png")
    Image.fromarray(np.zeros((2, 4, 3), dtype=np.uint8)).save(voc / "JPEGImages" / "2009_000001.jpg")  # unlabelled
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(val) + "\n")
    return voc


def test_prepare_voc_writes_train_aug_and_the_reader_reads_both_splits(tmp_path: Path, capsys) -> None:
    voc = write_voc2012(tmp_path)
    assert main(["voc", "--root", str(tmp_path), "--aug", str(tmp_path / "SegmentationClassAug")]) == 0
    assert "2 training and 2 validation images, all checked" in capsys.readouterr().out
    # the augmented training list: every augmented map outside val.txt (the unlabelled image is not in it)
    assert (voc / "ImageSets/Segmentation/train_aug.txt").read_text() == "2008_000002\n2008_000003\n"
    assert sorted(p.name for p in (voc / "SegmentationClassAug").iterdir()) == [f"{i}.png" for i in sorted(LABELS)]

    train, val = build_dataset("voc_21", "train", tmp_path), build_dataset("voc_21", "val", tmp_path)
    assert [train.image_id(i) for i in range(len(train))] == ["2008_000002", "2008_000003"]
    assert [val.image_id(i) for i in range(len(val))] == VAL  # the list's order
    assert len(train.vocabulary) == 21 and train.vocabulary.classes[0].name == "background"
    sample = val.load(0)
    expected = np.where(LABELS["2007_000032"] == 255, IGNORE_LABEL, LABELS["2007_000032"])
    np.testing.assert_array_equal(sample.sem_seg, expected)
    assert sample.image.shape == (2, 4, 3)
    assert val.classes_present(1).tolist() == [0, 20] and train.classes_present(1).tolist() == [0, 7]


def test_voc_reads_mib_style_lists_and_keeps_a_given_train_list(tmp_path: Path) -> None:
    voc = write_voc2012(tmp_path)
    mib_list = tmp_path / "train_aug.txt"  # MiB's splits/train_aug.txt format: image path, label path
    mib_list.write_text("/JPEGImages/2008_000003.jpg /SegmentationClassAug/2008_000003.png\n")
    assert main(["voc", "--root", str(tmp_path), "--aug", str(tmp_path / "SegmentationClassAug"),
                 "--train-list", str(mib_list)]) == 0
    assert (voc / "ImageSets/Segmentation/train_aug.txt").read_text() == "2008_000003\n"
    (voc / "ImageSets/Segmentation/val.txt").write_text(
        "/JPEGImages/2007_000033.jpg /SegmentationClassAug/2007_000033.png\n")
    val = build_dataset("voc_21", "val", tmp_path)
    assert len(val) == 1 and val.image_id(0) == "2007_000033"
    assert main(["voc", "--root", str(tmp_path)]) == 0  # rerun: labels in place, the existing list kept
    assert (voc / "ImageSets/Segmentation/train_aug.txt").read_text() == "2008_000003\n"


def test_prepare_voc_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no VOC 2012 release under"):
        main(["voc", "--root", str(tmp_path)])
    voc = write_voc2012(tmp_path / "a", {**LABELS, "2008_000004": np.array([[0, 21], [0, 0]])})
    with pytest.raises(DataError, match=r"SegmentationClassAug/2008_000004\.png holds value 21"):
        main(["voc", "--root", str(tmp_path / "a"), "--aug", str(tmp_path / "a" / "SegmentationClassAug")])
    assert not (voc / "ImageSets/Segmentation/train_aug.txt").exists()  # no list of unchecked images
    with pytest.raises(DataError, match="SegmentationClassAug missing"):
        write_voc2012(tmp_path / "b")
        main(["voc", "--root", str(tmp_path / "b")])
    overlapping = tmp_path / "overlap.txt"
    overlapping.write_text("2007_000032\n")
    with pytest.raises(DataError, match="1 training image.* validation images too .first: 2007_000032"):
        main(["voc", "--root", str(tmp_path / "b"), "--aug", str(tmp_path / "b" / "SegmentationClassAug"),
              "--train-list", str(overlapping)])
    with pytest.raises(DataError, match=r"dataset voc_21 \(train\) not found: .*train_aug\.txt.*prepare voc"):
        build_dataset("voc_21", "train", tmp_path / "a")


def test_voc21_15_5_runs_end_to_end_on_hand_built_voc(tmp_path: Path) -> None:
    """prepare voc -> stream voc21_15-5 (background learned in step 0) -> a zero-shot run with its initial row."""
    import json

    from benchmark.config import load_config
    from benchmark.runner import run_stream

    labels = {**LABELS, "2008_000004": np.array([[0, 17, 17, 0], [0, 17, 255, 0]])}  # step 1 needs class 17 (sheep)
    write_voc2012(tmp_path, labels)
    assert main(["voc", "--root", str(tmp_path), "--aug", str(tmp_path / "SegmentationClassAug")]) == 0
    cfg = load_config(["stream=voc21_15-5", "method=zeroshot", f"data.root={tmp_path}",
                       f"results_dir={tmp_path / 'results'}", "quiet=true"])
    summary = json.loads((run_stream(cfg) / "summary.json").read_text())
    manifest = json.loads((tmp_path / "results" / "voc21_15-5" / "zeroshot" / summary["run_id"] / "manifest.json")
                          .read_text())
    assert manifest["step_classes"] == [list(range(16)), list(range(16, 21))]
    assert manifest["vocabulary"] == "voc_21" and summary["num_steps"] == 2 and summary["initial"]["miou"]
