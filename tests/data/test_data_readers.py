"""Readers and the dataset factory: the COCO panoptic reader against panopticapi's sample, bad files named in
one-line DataErrors, `on_error=skip`, data-root precedence and the missing-data message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from benchmark.data.datasets import SkippingDataset, build_dataset, default_data_root, vocabulary_field
from benchmark.data.readers import (CocoPanopticFolder, SemSegFolder, check_labels, read_image, read_panoptic_ids,
                                    rgb_to_id)
from benchmark.data.types import VOCABULARY_DIR, Vocabulary
from benchmark.errors import DataError, UserError


def coco_sample_reader(sample: Path) -> CocoPanopticFolder:
    return CocoPanopticFolder(
        "coco_sample",
        "val",
        sample / "input_images",
        sample / "panoptic_examples.json",
        sample / "panoptic_examples",
        Vocabulary.load("coco_panoptic_133"),
        vocabulary_field("coco_panoptic_133", "coco_id"),
    )


def test_coco_vocabulary_matches_sample_categories(shared_fixtures: Path) -> None:
    categories = json.loads((shared_fixtures / "coco_panoptic_sample/panoptic_examples.json").read_text())["categories"]
    ours = json.loads((VOCABULARY_DIR / "coco_panoptic_133.json").read_text())["classes"]
    assert [(c["id"], bool(c["isthing"])) for c in categories] == [(c["coco_id"], c["isthing"]) for c in ours]


def test_coco_panoptic_reader_reproduces_sample(shared_fixtures: Path) -> None:
    sample = shared_fixtures / "coco_panoptic_sample"
    data = json.loads((sample / "panoptic_examples.json").read_text())
    contiguous = {c["id"]: i for i, c in enumerate(data["categories"])}  # detectron2: COCO order
    reader = coco_sample_reader(sample)
    annotations = sorted(data["annotations"], key=lambda a: a["file_name"])
    assert len(reader) == len(annotations) == 2
    for index, ann in enumerate(annotations):
        loaded = reader.load(index)
        assert loaded.image_id == Path(ann["file_name"]).stem
        image = data["images"][[img["id"] for img in data["images"]].index(ann["image_id"])]
        assert loaded.image.shape == (image["height"], image["width"], 3)
        assert [(s.id, s.category_id, s.iscrowd) for s in loaded.segments] == [
            (s["id"], contiguous[s["category_id"]], bool(s["iscrowd"])) for s in ann["segments_info"]
        ]
        assert any(s.iscrowd for s in loaded.segments)  # the sample has crowd regions
        rgb = np.asarray(Image.open(sample / "panoptic_examples" / ann["file_name"])).astype(np.int64)
        segment_ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        np.testing.assert_array_equal(loaded.pan_seg, segment_ids)
        for seg in ann["segments_info"]:
            assert int((loaded.pan_seg == seg["id"]).sum()) == seg["area"]
        expected_semantic = np.full(segment_ids.shape, 65535)
        for seg in ann["segments_info"]:
            expected_semantic[segment_ids == seg["id"]] = contiguous[seg["category_id"]]
        np.testing.assert_array_equal(loaded.sem_seg, expected_semantic)
        assert (loaded.sem_seg[segment_ids == 0] == 65535).all() and (segment_ids == 0).any()
        assert reader.classes_present(index).tolist() == sorted(
            {contiguous[s["category_id"]] for s in ann["segments_info"]}
        )


# ------------------------------------------------------------------------------------------------ bad inputs


def write_semseg_folder(root: Path, count: int = 3, size: tuple[int, int] = (6, 8)) -> tuple[Path, Path]:
    """A valid ADE-847-style layout (jpg + uint16 tif) with `count` samples under root."""
    images, labels = root / "images", root / "labels"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(np.full(size + (3,), 40 * i, dtype=np.uint8)).save(images / f"s{i}.jpg")
        label = np.full(size, 65535, dtype=np.uint16)
        label[:, : i + 1] = 10 * i
        tifffile.imwrite(labels / f"s{i}.tif", label)
    return images, labels


def semseg(root: Path) -> SemSegFolder:
    return SemSegFolder("t", "val", root / "images", root / "labels", Vocabulary.load("ade20k_847"))


def test_valid_folder_reads(tmp_path: Path) -> None:
    write_semseg_folder(tmp_path)
    sample = semseg(tmp_path).load(2)
    assert sample.sem_seg.dtype == np.int64 and sample.sem_seg.shape == (6, 8)
    assert (sample.sem_seg[:, :3] == 20).all() and (sample.sem_seg[:, 3:] == 65535).all()


def test_corrupt_image_names_file(tmp_path: Path) -> None:
    write_semseg_folder(tmp_path)
    (tmp_path / "images" / "s1.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=r"cannot read image .*s1\.jpg"):
        semseg(tmp_path).load(1)


def test_truncated_tif_names_file(tmp_path: Path) -> None:
    write_semseg_folder(tmp_path, size=(64, 64))
    path = tmp_path / "labels" / "s0.tif"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"cannot read label map .*s0\.tif"):
        semseg(tmp_path).load(0)


def test_label_size_differs_from_image(tmp_path: Path) -> None:
    write_semseg_folder(tmp_path)
    tifffile.imwrite(tmp_path / "labels" / "s0.tif", np.zeros((6, 9), dtype=np.uint16))
    with pytest.raises(DataError, match=r"s0\.tif is 9x6 but its image .*s0\.jpg is 8x6"):
        semseg(tmp_path).load(0)


def test_out_of_range_label_value(tmp_path: Path) -> None:
    write_semseg_folder(tmp_path)
    tifffile.imwrite(tmp_path / "labels" / "s2.tif", np.full((6, 8), 847, dtype=np.uint16))
    with pytest.raises(DataError, match=r"s2\.tif holds value 847, neither a class id \(0\.\.846\)"):
        semseg(tmp_path).load(2)
    with pytest.raises(DataError, match="holds value 847"):
        semseg(tmp_path).classes_present(2)


def test_eight_bit_layout_maps_255_to_ignore(tmp_path: Path) -> None:
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    Image.fromarray(np.zeros((2, 3, 3), dtype=np.uint8)).save(images / "a.jpg")
    Image.fromarray(np.array([[0, 58, 255], [1, 255, 2]], dtype=np.uint8)).save(labels / "a.png")
    reader = SemSegFolder("pc59", "val", images, labels, Vocabulary.load("pascal_context_59"), ".png", label_ignore=255)
    np.testing.assert_array_equal(reader.load(0).sem_seg, [[0, 58, 65535], [1, 65535, 2]])
    Image.fromarray(np.array([[59]], dtype=np.uint8)).save(labels / "a.png")
    with pytest.raises(DataError, match="holds value 59"):
        reader.classes_present(0)


# ------------------------------------------------------------------------------------------ on_error=skip


def ade_root(tmp_path: Path) -> Path:
    """A data root with an ade20k_847 validation split of three samples."""
    split = tmp_path / "ADE20K_2021_17_01"
    images, labels = write_semseg_folder(tmp_path / "tmp")
    (split / "images_detectron2").mkdir(parents=True)
    (split / "annotations_detectron2").mkdir()
    images.rename(split / "images_detectron2" / "validation")
    labels.rename(split / "annotations_detectron2" / "validation")
    return tmp_path


def test_on_error_skip_counts_unreadable_files(tmp_path: Path) -> None:
    root = ade_root(tmp_path)
    split = root / "ADE20K_2021_17_01"
    (split / "images_detectron2" / "validation" / "s0.jpg").write_bytes(b"broken")
    tifffile.imwrite(split / "annotations_detectron2" / "validation" / "s2.tif", np.full((6, 8), 9999, dtype=np.uint16))

    with pytest.raises(DataError, match="s0.jpg"):
        build_dataset("ade20k_847", "val", root).load(0)
    dataset = build_dataset("ade20k_847", "val", root, on_error="skip")
    assert isinstance(dataset, SkippingDataset) and len(dataset) == 3
    assert [s.image_id for s in dataset.samples()] == ["s1"]
    assert dataset.classes_present(2).size == 0  # a stream builder leaves it out
    assert dataset.classes_present(1).tolist() == [10]
    assert sorted(dataset.skipped) == ["s0", "s2"]  # counted once per image, with the reason
    assert "s0.jpg" in dataset.skipped["s0"] and "9999" in dataset.skipped["s2"]
    assert dataset.summary().startswith("ade20k_847 val: skipped 2 unreadable image(s)")


def test_on_error_value_checked(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="data.on_error='ignore'"):
        build_dataset("ade20k_847", "val", ade_root(tmp_path), on_error="ignore")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ factory, root


def test_missing_root_message_names_path_setting_and_command(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        build_dataset("ade20k_847", "val", tmp_path / "nowhere")
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "nowhere" / "ADE20K_2021_17_01" / "images_detectron2" / "validation") in message
    assert "data.root=" in message and "DETECTRON2_DATASETS" in message
    assert f"python -m benchmark prepare ade20k_full --src ADE20K_2021_17_01 --root {tmp_path / 'nowhere'}" in message
    for name, command in (
        ("pascal_context_459", "prepare pascal_context"),
        ("pascal_context_59", "prepare pascal_context"),
        ("coco_panoptic_133", "prepare coco_panoptic"),
        ("ade20k_150", "prepare ade20k_150"),
    ):
        with pytest.raises(DataError, match=command):
            build_dataset(name, "train", tmp_path)


def test_unknown_name_and_split() -> None:
    with pytest.raises(UserError, match="did you mean: ade20k_847"):
        build_dataset("ade20k_874", "val", Path("."))
    with pytest.raises(UserError, match="unknown split 'validation'"):
        build_dataset("ade20k_847", "validation", Path("."))


def test_default_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    assert default_data_root() == Path("datasets")
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    assert default_data_root() == tmp_path


def test_ade20k_150_panoptic_layout(tmp_path: Path) -> None:
    """Mask2Former's ADE panoptic layout: category ids are the A-150 contiguous ids (0..149)."""
    ade = tmp_path / "ADEChallengeData2016"
    (ade / "images" / "validation").mkdir(parents=True)
    (ade / "ade20k_panoptic_val").mkdir()
    Image.fromarray(np.zeros((2, 3, 3), dtype=np.uint8)).save(ade / "images/validation/ADE_val_00000001.jpg")
    pan = np.zeros((2, 3, 3), dtype=np.uint8)
    pan[0, :, 0] = 7  # segment 7: wall (0, stuff)
    pan[1, :2, 1] = 1  # segment 256: person (12, thing)
    Image.fromarray(pan).save(ade / "ade20k_panoptic_val/ADE_val_00000001.png")
    (ade / "ade20k_panoptic_val.json").write_text(
        json.dumps(
            {
                "images": [{"id": "ADE_val_00000001", "file_name": "ADE_val_00000001.jpg", "height": 2, "width": 3}],
                "annotations": [
                    {
                        "image_id": "ADE_val_00000001",
                        "file_name": "ADE_val_00000001.png",
                        "segments_info": [
                            {"id": 7, "category_id": 0, "iscrowd": 0, "area": 3},
                            {"id": 256, "category_id": 12, "iscrowd": 0, "area": 2},
                        ],
                    }
                ],
                "categories": [],
            }
        )
    )
    sample = build_dataset("ade20k_150_panoptic", "val", tmp_path).load(0)
    np.testing.assert_array_equal(sample.sem_seg, [[0, 0, 0], [12, 12, 65535]])
    assert [(s.id, s.category_id, s.isthing) for s in sample.segments] == [(7, 0, False), (256, 12, True)]


def test_read_panoptic_ids_equals_the_rgb_formula(shared_fixtures: Path, tmp_path: Path) -> None:
    pngs = sorted((shared_fixtures / "coco_panoptic_sample" / "panoptic_examples").glob("*.png"))
    assert pngs
    rng = np.random.default_rng(0)
    for mode, channels in (("RGB", 3), ("RGBA", 4), ("L", 1)):  # 8-bit grayscale reads as R = G = B
        pixels = rng.integers(0, 256, (5, 7, channels), dtype=np.uint8)
        path = tmp_path / f"{mode}.png"
        Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode).save(path)
        pngs.append(path)
    for path in pngs:
        ids = read_panoptic_ids(path)
        assert ids.dtype == np.int64
        np.testing.assert_array_equal(ids, rgb_to_id(read_image(path)))
    with pytest.raises(DataError, match="image file missing"):
        read_panoptic_ids(tmp_path / "absent.png")


@pytest.mark.parametrize("dtype, ignore", [(np.uint16, 65535), (np.uint8, 255), (np.int32, 65535), (np.uint16, 500)])
def test_check_labels_boundaries(dtype, ignore) -> None:
    num_classes = 150
    valid = np.array([0, num_classes - 1, ignore], dtype=dtype)
    check_labels(valid, num_classes, Path("ok.png"), ignore_value=ignore)
    for bad in (num_classes, ignore - 1, 200):
        labels = np.append(valid, dtype(bad))
        with pytest.raises(DataError, match=f"holds value {bad},"):
            check_labels(labels, num_classes, Path("bad.png"), ignore_value=ignore)


def test_images_are_turned_upright_by_their_exif_orientation(tmp_path: Path) -> None:
    """detectron2's read_image applies the EXIF orientation (its _apply_exif_orientation); so does read_image."""
    pixels = np.zeros((4, 6, 3), np.uint8)
    pixels[0, 0] = 255  # top-left corner marked
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 90 degree clockwise turn
    Image.fromarray(pixels).save(tmp_path / "rotated.png", exif=exif)
    upright = read_image(tmp_path / "rotated.png")
    assert upright.shape == (6, 4, 3) and upright[0, -1].tolist() == [255, 255, 255]
    Image.fromarray(pixels).save(tmp_path / "plain.png")
    assert np.array_equal(read_image(tmp_path / "plain.png"), pixels)
