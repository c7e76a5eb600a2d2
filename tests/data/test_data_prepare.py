"""`prepare` converters against the real ADE20K / COCO samples in ../shared/fixtures and a synthetic Pascal
Context `.mat`; expectations are computed here from the raw files, not through the converter's helpers."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from benchmark.data.datasets import build_dataset
from benchmark.data.datasets.ade20k_full import resize_bilinear
from benchmark.data.datasets.pascal_context import PC59_LABELMAP_VALUES
from benchmark.data.prepare import main
from benchmark.data.writing import output_path
from benchmark.data.readers import read_raw_label_map
from benchmark.data.types import VOCABULARY_DIR
from benchmark.errors import DataError

ADE_STREET = "ade20k_full_raw/ADE20K_2021_17_01/images/ADE/training/urban/street"


def vocabulary_classes(name: str) -> list[dict]:
    return json.loads((VOCABULARY_DIR / f"{name}.json").read_text())["classes"]


def opencv_nearest(src: int, dst: int) -> np.ndarray:
    """OpenCV resizeNN's source index, `cvFloor(x * ifx)` with `ifx = 1. / (dst / src)` in double (the
    labels of MaskFormer's prepare_ade20k_full_sem_seg.py go through cv2.resize INTER_NEAREST)."""
    ifx = 1.0 / (dst / src)
    return np.array([min(int(np.floor(x * ifx)), src - 1) for x in range(dst)])


def test_prepare_ade20k_full_matches_raw_seg(shared_fixtures: Path, tmp_path: Path) -> None:
    src = shared_fixtures / "ade20k_full_raw"  # the parent of ADE20K_2021_17_01
    assert main(["ade20k_full", "--src", str(src), "--root", str(tmp_path)]) == 0
    raw_to_train = {c["ade_raw_id"]: c["id"] for c in vocabulary_classes("ade20k_847")}
    out = tmp_path / "ADE20K_2021_17_01"
    raw_images = sorted((shared_fixtures / ADE_STREET).glob("*.jpg"))
    assert len(raw_images) == 3
    for raw_image in raw_images:
        seg = np.asarray(Image.open(raw_image.with_name(raw_image.stem + "_seg.png"))).astype(np.int64)
        raw_class = seg[..., 0] // 10 * 256 + seg[..., 1]  # (H, W)
        height, width = raw_class.shape
        short, long = min(height, width), max(height, width)
        assert short > 512  # every fixture image is resized
        new_long = int(np.floor(long * 512 / short + 0.5))
        new_h, new_w = (512, new_long) if height <= width else (new_long, 512)
        resized = raw_class[opencv_nearest(height, new_h)][:, opencv_nearest(width, new_w)]
        expected = np.full(resized.shape, 65535, dtype=np.int64)
        for raw_id in np.unique(resized):
            if raw_id in raw_to_train:
                expected[resized == raw_id] = raw_to_train[raw_id]

        labels = tifffile.imread(out / "annotations_detectron2" / "training" / f"{raw_image.stem}.tif")
        assert labels.dtype == np.uint16 and labels.shape == (new_h, new_w)
        values, counts = np.unique(labels, return_counts=True)
        exp_values, exp_counts = np.unique(expected, return_counts=True)
        assert values.tolist() == exp_values.tolist()
        assert counts.tolist() == exp_counts.tolist()
        np.testing.assert_array_equal(labels, expected)
        assert 65535 in values and len(values) > 5  # the samples hold unmapped (0) pixels and many classes

        image = np.asarray(Image.open(out / "images_detectron2" / "training" / raw_image.name))
        assert image.shape == (new_h, new_w, 3)
        original = torch.from_numpy(np.asarray(Image.open(raw_image).convert("RGB"))).permute(2, 0, 1)[None]
        reference = torch.nn.functional.interpolate(
            original.float(), (new_h, new_w), mode="bilinear", align_corners=False
        )
        reference = reference[0].permute(1, 2, 0).round().clamp(0, 255).numpy().astype(np.uint8)
        encoded = io.BytesIO()
        Image.fromarray(reference).save(encoded, format="JPEG", quality=75)  # PIL's default, as MaskFormer saves
        reference = np.asarray(Image.open(encoded)).astype(np.float64)
        assert np.abs(image.astype(np.float64) - reference).mean() < 0.5


def test_prepare_ade20k_full_dataset_reads_back(shared_fixtures: Path, tmp_path: Path) -> None:
    main(
        ["ade20k_full", "--src", str(shared_fixtures / "ade20k_full_raw" / "ADE20K_2021_17_01"), "--root", str(tmp_path)]
    )
    dataset = build_dataset("ade20k_847", "train", tmp_path)
    assert len(dataset) == 3
    sample = dataset.load(0)
    assert sample.image.shape[:2] == sample.sem_seg.shape and min(sample.sem_seg.shape) == 512


def write_ade_release(root: Path, name: str, raw_class: np.ndarray) -> None:
    """A tiny ADE20K full release holding one image whose `_seg.png` encodes `raw_class` (H, W)."""
    folder = root / "ADE20K_2021_17_01" / "images" / "ADE" / "validation" / "misc"
    folder.mkdir(parents=True)
    seg = np.zeros(raw_class.shape + (3,), dtype=np.uint8)
    seg[..., 0] = raw_class // 256 * 10
    seg[..., 1] = raw_class % 256
    Image.fromarray(seg).save(folder / f"{name}_seg.png")
    Image.fromarray(np.full(raw_class.shape + (3,), 128, dtype=np.uint8)).save(folder / f"{name}.jpg")


def test_prepare_ade20k_full_val_split_small_image_and_resume(tmp_path: Path, capsys) -> None:
    raw_class = np.zeros((30, 40), dtype=np.int64)
    raw_class[:, :10] = 2978  # wall -> 0
    raw_class[:, 10:20] = 3148  # adding machine -> 846 (R = 120: R/10 = 12 -> 12 * 256 + 76)
    raw_class[:, 20:30] = 5  # an index outside the 847 -> ignore
    write_ade_release(tmp_path / "raw", "ADE_val_00000001", raw_class)
    dst = tmp_path / "root"
    main(["ade20k_full", "--src", str(tmp_path / "raw" / "ADE20K_2021_17_01"), "--root", str(dst)])
    labels = read_raw_label_map(dst / "ADE20K_2021_17_01/annotations_detectron2/validation/ADE_val_00000001.tif")
    assert labels.shape == (30, 40)  # short side <= 512: not resized
    assert (labels[:, :10] == 0).all() and (labels[:, 10:20] == 846).all()
    assert (labels[:, 20:] == 65535).all()  # unmapped index and unlabelled 0
    assert not (dst / "ADE20K_2021_17_01/images_detectron2/training").exists()
    capsys.readouterr()
    main(["ade20k_full", "--src", str(tmp_path / "raw"), "--dst", str(dst)])  # the old spelling: still read
    out, err = capsys.readouterr()
    assert "wrote 0 image(s), kept 1" in out
    assert err.splitlines()[0] == f"warning: prepare --dst is deprecated, use --root {dst} (the data root to write into)"
    main(["ade20k_full", "--src", str(tmp_path / "raw"), "--root", str(dst), "--overwrite"])
    assert "wrote 1 image(s)" in capsys.readouterr().out


def test_prepare_ade20k_full_wrong_src(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no images/ADE folder"):
        main(["ade20k_full", "--src", str(tmp_path), "--root", str(tmp_path / "out")])
    with pytest.raises(DataError, match="is not a folder"):
        main(["ade20k_full", "--src", str(tmp_path / "missing"), "--root", str(tmp_path / "out")])


def test_output_path_refuses_escaping_names(tmp_path: Path) -> None:
    assert output_path(tmp_path, "a", "b.png") == tmp_path / "a" / "b.png"
    for bad in ("..", "../x.png", "a/b.png", "/etc/passwd"):
        with pytest.raises(DataError, match="refusing to write"):
            output_path(tmp_path, bad)


def test_resize_bilinear_matches_torch_half_pixel_bilinear() -> None:
    image = np.random.default_rng(0).integers(0, 256, (97, 131, 3), dtype=np.uint8)
    ours = resize_bilinear(image, 40, 53).astype(np.int64)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    reference = torch.nn.functional.interpolate(tensor, (40, 53), mode="bilinear", align_corners=False)
    reference = reference[0].permute(1, 2, 0).round().numpy().astype(np.int64)
    assert np.abs(ours - reference).max() <= 1


# ------------------------------------------------------------------------------------------- Pascal Context


def write_voc2010(
    root: Path, label_maps: dict[str, np.ndarray], splits: dict[str, list[str]], image_sizes=None
) -> Path:
    from scipy.io import savemat

    voc = root / "VOCdevkit" / "VOC2010"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "trainval").mkdir()
    (voc / "ImageSets" / "SegmentationContext").mkdir(parents=True)
    for image_id, label_map in label_maps.items():
        savemat(voc / "trainval" / f"{image_id}.mat", {"LabelMap": label_map.astype(np.uint16)})
        height, width = (image_sizes or {}).get(image_id, label_map.shape)
        Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8)).save(voc / "JPEGImages" / f"{image_id}.jpg")
    for split, ids in splits.items():
        (voc / "ImageSets" / "SegmentationContext" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return voc


def test_prepare_pascal_context_459_and_59(tmp_path: Path) -> None:
    label_map = np.array([[0, 1, 2, 459], [9, 9, 18, 5]])  # 2 aeroplane, 9 bag, 18 bed: PC-59 ids 0, 1, 2
    write_voc2010(
        tmp_path / "src",
        {"2008_000001": label_map, "2008_000002": label_map[::-1]},
        {"train": ["2008_000001"], "val": ["2008_000002"]},
    )
    dst = tmp_path / "root"
    assert main(["pascal_context", "--src", str(tmp_path / "src"), "--root", str(dst)]) == 0

    labels_459 = tifffile.imread(dst / "pascal_ctx_d2/annotations_ctx459/training/2008_000001.tif")
    assert labels_459.dtype == np.uint16
    np.testing.assert_array_equal(labels_459, [[65535, 0, 1, 458], [8, 8, 17, 4]])
    labels_59 = np.asarray(Image.open(dst / "pascal_ctx_d2/annotations_ctx59/training/2008_000001.png"))
    np.testing.assert_array_equal(labels_59, [[255, 255, 0, 255], [1, 1, 2, 255]])
    assert (dst / "pascal_ctx_d2/images/validation/2008_000002.jpg").is_file()

    pc459 = build_dataset("pascal_context_459", "val", dst).load(0)
    np.testing.assert_array_equal(pc459.sem_seg, [[8, 8, 17, 4], [65535, 0, 1, 458]])
    pc59 = build_dataset("pascal_context_59", "train", dst).load(0)
    np.testing.assert_array_equal(pc59.sem_seg, [[65535, 65535, 0, 65535], [1, 1, 2, 65535]])


def test_pc59_labelmap_values_name_the_pc59_classes() -> None:
    pc459 = [c["name"] for c in vocabulary_classes("pascal_context_459")]
    pc59 = [c["name"] for c in vocabulary_classes("pascal_context_59")]
    assert len(PC59_LABELMAP_VALUES) == len(pc59) == 59
    renamed = {"diningtable": "table"}  # the one PC-59 name that differs from its PC-459 name
    assert [pc459[v - 1] for v in PC59_LABELMAP_VALUES] == [renamed.get(n, n) for n in pc59]


def test_prepare_pascal_context_bad_inputs(tmp_path: Path) -> None:
    write_voc2010(tmp_path / "a", {"x1": np.ones((4, 5))}, {"train": ["x1"], "val": []}, image_sizes={"x1": (4, 6)})
    with pytest.raises(DataError, match=r"x1\.mat: LabelMap is 5x4 but .*x1\.jpg is 6x4"):
        main(["pascal_context", "--src", str(tmp_path / "a"), "--root", str(tmp_path / "out")])
    write_voc2010(tmp_path / "b", {"x2": np.full((4, 5), 460)}, {"train": ["x2"], "val": []})
    with pytest.raises(DataError, match=r"x2\.mat: LabelMap holds value 460"):
        main(["pascal_context", "--src", str(tmp_path / "b"), "--root", str(tmp_path / "out")])
    voc = write_voc2010(tmp_path / "c", {}, {})
    shutil.rmtree(voc / "ImageSets")
    with pytest.raises(DataError, match="no split lists"):
        main(["pascal_context", "--src", str(voc), "--root", str(tmp_path / "out")])
    with pytest.raises(DataError, match="no JPEGImages folder"):
        main(["pascal_context", "--src", str(tmp_path), "--root", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()  # every failure above happened before anything was written


# --------------------------------------------------------------------------------------------- COCO panoptic


def coco_root_from_sample(sample: Path, root: Path) -> Path:
    """The panopticapi sample rearranged into the detectron2 `coco/` layout as the val split."""
    coco = root / "coco"
    (coco / "annotations").mkdir(parents=True)
    shutil.copy(sample / "panoptic_examples.json", coco / "annotations" / "panoptic_val2017.json")
    shutil.copytree(sample / "panoptic_examples", coco / "panoptic_val2017")
    shutil.copytree(sample / "input_images", coco / "val2017")
    return root


def test_prepare_coco_panoptic_semantic_maps(shared_fixtures: Path, tmp_path: Path) -> None:
    sample = shared_fixtures / "coco_panoptic_sample"
    root = coco_root_from_sample(sample, tmp_path)
    derived = build_dataset("coco_panoptic_133", "val", root)
    assert derived.semantic_dir is None
    assert main(["coco_panoptic", "--root", str(root)]) == 0

    contiguous = {c["coco_id"]: c["id"] for c in vocabulary_classes("coco_panoptic_133")}
    annotations = json.loads((sample / "panoptic_examples.json").read_text())["annotations"]
    for ann in annotations:
        rgb = np.asarray(Image.open(sample / "panoptic_examples" / ann["file_name"])).astype(np.int64)
        segment_ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        expected = np.full(segment_ids.shape, 255)
        for seg in ann["segments_info"]:
            expected[segment_ids == seg["id"]] = contiguous[seg["category_id"]]
        written = np.asarray(Image.open(root / "coco" / "panoptic_semseg_val2017" / ann["file_name"]))
        assert written.dtype == np.uint8
        np.testing.assert_array_equal(written, expected)

    prepared = build_dataset("coco_panoptic_133", "val", root)
    assert prepared.semantic_dir == root / "coco" / "panoptic_semseg_val2017"
    for i in range(len(prepared)):
        np.testing.assert_array_equal(prepared.load(i).sem_seg, derived.load(i).sem_seg)


def test_prepare_coco_panoptic_without_annotations(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no COCO panoptic annotations"):
        main(["coco_panoptic", "--root", str(tmp_path)])


def test_prepare_ade20k_150_shifts_labels(tmp_path: Path) -> None:
    folder = tmp_path / "ADEChallengeData2016" / "annotations" / "validation"
    folder.mkdir(parents=True)
    Image.fromarray(np.array([[0, 1], [150, 7]], dtype=np.uint8)).save(folder / "ADE_val_00000001.png")
    images = tmp_path / "ADEChallengeData2016" / "images" / "validation"
    images.mkdir(parents=True)
    Image.fromarray(np.zeros((2, 2, 3), dtype=np.uint8)).save(images / "ADE_val_00000001.jpg")
    main(["ade20k_150", "--root", str(tmp_path)])
    sample = build_dataset("ade20k_150", "val", tmp_path).load(0)
    np.testing.assert_array_equal(sample.sem_seg, [[65535, 0], [149, 6]])


def _ade150_instance_tree(root: Path, semantic: np.ndarray, instance: np.ndarray) -> None:
    ade = root / "ADEChallengeData2016"
    for folder, array in (("images", np.zeros((*semantic.shape, 3), dtype=np.uint8)), ("annotations", semantic),
                          ("annotations_instance", instance)):
        (ade / folder / "validation").mkdir(parents=True, exist_ok=True)
        name = "ADE_val_00000001." + ("jpg" if folder == "images" else "png")
        Image.fromarray(array).save(ade / folder / "validation" / name)


def test_prepare_ade20k_150_panoptic_by_hand(tmp_path: Path) -> None:
    # semantic (1-based A-150): wall=1 (stuff), sky=3 (stuff), bed=8 (thing: comes from the instance map), 0=VOID
    semantic = np.array([[1, 1, 1, 3, 3, 3],
                         [1, 1, 1, 3, 3, 0],
                         [1, 1, 8, 8, 8, 8],
                         [1, 1, 8, 8, 8, 8]], dtype=np.uint8)
    instance = np.zeros((4, 6, 3), dtype=np.uint8)
    instance[2:, 1:, :2] = (1, 7)  # instance category 1 (bed, A-150 id 7), instance 7; also covers two wall pixels
    instance[0, 0, :2] = (4, 9)  # instance category 4 = person (A-150 id 12) on a wall pixel
    _ade150_instance_tree(tmp_path, semantic, instance)
    main(["ade20k_150_panoptic", "--root", str(tmp_path)])

    data = json.loads((tmp_path / "ADEChallengeData2016" / "ade20k_panoptic_val.json").read_text())
    assert data["images"] == [{"id": "ADE_val_00000001", "file_name": "ADE_val_00000001.jpg", "width": 6, "height": 4}]
    assert [c["id"] for c in data["categories"]] == list(range(150)) and sum(c["isthing"] for c in data["categories"]) == 100
    segments = data["annotations"][0]["segments_info"]
    # stuff first (areas measured before the things are pasted, as Mask2Former's script), then things by instance id
    assert [(s["id"], s["category_id"], s["area"], s["bbox"]) for s in segments] == [
        (1, 0, 10, [0, 0, 3, 4]), (2, 2, 5, [3, 0, 3, 2]), (3, 7, 10, [1, 2, 5, 2]), (4, 12, 1, [0, 0, 1, 1])]
    sample = build_dataset("ade20k_150_panoptic", "val", tmp_path).load(0)
    np.testing.assert_array_equal(sample.pan_seg, [[4, 1, 1, 2, 2, 2],
                                                   [1, 1, 1, 2, 2, 0],
                                                   [1, 3, 3, 3, 3, 3],
                                                   [1, 3, 3, 3, 3, 3]])
    np.testing.assert_array_equal(sample.sem_seg, [[12, 0, 0, 2, 2, 2],
                                                   [0, 0, 0, 2, 2, 65535],
                                                   [0, 7, 7, 7, 7, 7],
                                                   [0, 7, 7, 7, 7, 7]])
    assert [(s.id, s.category_id, s.isthing) for s in sample.segments] == [
        (1, 0, False), (2, 2, False), (3, 7, True), (4, 12, True)]


def test_prepare_ade20k_150_panoptic_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no images under"):
        main(["ade20k_150_panoptic", "--root", str(tmp_path)])
    semantic = np.ones((2, 2), dtype=np.uint8)
    instance = np.zeros((2, 2, 3), dtype=np.uint8)
    instance[0, 0, 1] = 5  # an instance without an instance category
    _ade150_instance_tree(tmp_path, semantic, instance)
    with pytest.raises(DataError, match=r"ADE_val_00000001.png: instance 5 has instance category \[0\]"):
        main(["ade20k_150_panoptic", "--root", str(tmp_path)])
    (tmp_path / "ADEChallengeData2016" / "annotations_instance" / "validation" / "ADE_val_00000001.png").unlink()
    with pytest.raises(DataError, match="has no annotation .*annotations_instance"):
        main(["ade20k_150_panoptic", "--root", str(tmp_path)])
    assert not (tmp_path / "ADEChallengeData2016" / "ade20k_panoptic_val.json").exists()


def test_every_prepare_command_takes_root(capsys) -> None:
    """One form for every dataset: `prepare DATASET --root ROOT`, plus `--src RAW` where the release lies elsewhere."""
    from benchmark.data.datasets import PREPARE_COMMANDS
    from benchmark.data.prepare import build_parser

    parser = build_parser()
    for name in PREPARE_COMMANDS.names():
        with pytest.raises(SystemExit):
            parser.parse_args([name, "--help"])
        assert "--root ROOT" in capsys.readouterr().out, name
