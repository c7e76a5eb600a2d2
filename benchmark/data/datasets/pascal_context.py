"""Pascal Context, 459 and 59 classes, in the detectron2 layout of ODISE / FC-CLIP
`prepare_pascal_ctx_sem_seg.py`: `pascal_ctx_d2/images/{training,validation}/*.jpg`,
`annotations_ctx459/*.tif` (uint16, 65535 = unlabelled) and `annotations_ctx59/*.png` (uint8, 255 = ignore).

`prepare pascal_context --src VOC2010 --root ROOT` writes both from VOC2010 + the Pascal Context `.mat` files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from benchmark.data.catalog import SPLIT_FOLDERS, DatasetSpec, PrepareCommand, register_dataset, register_prepare
from benchmark.data.catalog import add_root_argument, semseg_layout
from benchmark.data.types import IGNORE_LABEL
from benchmark.data.writing import copy_file, output_path, report, run_jobs, save_png8, save_tif16
from benchmark.errors import DataError

PREPARE = "python -m benchmark prepare pascal_context --src VOCdevkit/VOC2010 --root {root}"
PC459_NUM_CLASSES = 459
# PC-59 classes as 1-based PC-459 LabelMap values, in PC-59 id order (the Detail API subset used by
# ODISE / FC-CLIP prepare_pascal_ctx_sem_seg.py); every other value is ignore in the 59-class maps
PC59_LABELMAP_VALUES = (
    2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98, 104, 105, 113, 115, 144, 158,
    159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295, 296, 308, 324, 326, 347, 349, 354, 355, 360,
    366, 368, 397, 415, 416, 420, 424, 427, 440, 445, 454, 458,
)  # fmt: skip

register_dataset(
    DatasetSpec(
        "pascal_context_459",
        "pascal_context_459",
        semseg_layout("pascal_ctx_d2/images/{folder}", "pascal_ctx_d2/annotations_ctx459/{folder}", ".tif"),
        "pascal_ctx_d2",
        PREPARE,
    )
)
register_dataset(
    DatasetSpec(
        "pascal_context_59",
        "pascal_context_59",
        semseg_layout("pascal_ctx_d2/images/{folder}", "pascal_ctx_d2/annotations_ctx59/{folder}", ".png", 255),
        "pascal_ctx_d2",
        PREPARE,
    )
)


def find_voc2010(src: Path) -> Path:
    """The VOC2010 folder (with JPEGImages/ and the Pascal Context trainval/ .mat folder), given it or a
    parent (VOCdevkit or the folder holding VOCdevkit)."""
    for base in (src, src / "VOC2010", src / "VOCdevkit" / "VOC2010"):
        if (base / "JPEGImages").is_dir():
            if not (base / "trainval").is_dir():
                raise DataError(
                    f"--src {src}: {base / 'trainval'} missing; unpack the Pascal Context trainval.tar.gz "
                    f"(the *.mat LabelMap files) into {base}"
                )
            return base
    raise DataError(
        f"--src {src}: no JPEGImages folder in it, in VOC2010/ or in VOCdevkit/VOC2010/; give the VOC2010 folder"
    )


def read_split_lists(voc: Path, splits_dir: Path | None) -> dict[str, list[str]]:
    """Image ids per split: `train.txt` / `val.txt` (mmseg's ImageSets/SegmentationContext layout) or the
    Detail API's `trainval_merged.json` phases (ODISE / FC-CLIP)."""
    folder = splits_dir or voc / "ImageSets" / "SegmentationContext"
    if (folder / "train.txt").is_file() and (folder / "val.txt").is_file():
        return {
            split: [line.strip() for line in (folder / f"{split}.txt").read_text().splitlines() if line.strip()]
            for split in ("train", "val")
        }
    merged = voc / "trainval_merged.json"
    if splits_dir is None and merged.is_file():
        lists: dict[str, list[str]] = {"train": [], "val": []}
        for image in json.loads(merged.read_text())["images"]:
            if image.get("phase") in lists:
                lists[image["phase"]].append(Path(image["file_name"]).stem)
        return lists
    raise DataError(
        f"no split lists: expected {folder / 'train.txt'} and val.txt, or {merged}; pass --splits DIR holding "
        "train.txt and val.txt"
    )


def pascal_context_labels(label_map: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """LabelMap (1..459, 0 = unlabelled) -> (459-class uint16 map, 65535 ignore; 59-class uint8 map, 255
    ignore)."""
    if label_map.min() < 0 or label_map.max() > PC459_NUM_CLASSES:
        raise DataError(f"{path}: LabelMap holds value {int(label_map.max())}, outside 0..{PC459_NUM_CLASSES}")
    to_459 = np.concatenate([[IGNORE_LABEL], np.arange(PC459_NUM_CLASSES)]).astype(np.uint16)
    to_59 = np.full(PC459_NUM_CLASSES + 1, 255, dtype=np.uint8)
    to_59[list(PC59_LABELMAP_VALUES)] = np.arange(len(PC59_LABELMAP_VALUES))
    values = label_map.astype(np.int64)
    return to_459[values], to_59[values]


def convert_pascal_image(job: tuple[Path, Path, Path, Path, Path, bool]) -> bool:
    mat_path, image_path, out_image, out_459, out_59, overwrite = job
    if not overwrite and out_image.is_file() and out_459.is_file() and out_59.is_file():
        return False
    from scipy.io import loadmat

    try:
        label_map = np.asarray(loadmat(mat_path)["LabelMap"])
    except FileNotFoundError:
        raise DataError(f"Pascal Context label file missing: {mat_path}") from None
    except Exception as exc:  # scipy raises ValueError / KeyError / TypeError for broken files
        raise DataError(f"cannot read LabelMap from {mat_path}: {exc!r}") from None
    try:
        with Image.open(image_path) as img:
            width, height = img.size
    except FileNotFoundError:
        raise DataError(f"image file missing: {image_path}") from None
    except Exception as exc:
        raise DataError(f"cannot read image {image_path}: {exc}") from None
    if label_map.shape != (height, width):
        raise DataError(
            f"{mat_path}: LabelMap is {label_map.shape[1]}x{label_map.shape[0]} but {image_path} is {width}x{height}"
        )
    labels_459, labels_59 = pascal_context_labels(label_map, mat_path)
    copy_file(image_path, out_image)
    save_tif16(out_459, labels_459)
    save_png8(out_59, labels_59)
    return True


def prepare_pascal_context(args: argparse.Namespace) -> int:
    voc = find_voc2010(args.src)
    out_root = output_path(args.root, "pascal_ctx_d2")
    jobs = []
    for split, ids in read_split_lists(voc, args.splits).items():
        folder = SPLIT_FOLDERS[split]
        for image_id in ids:
            jobs.append(
                (
                    output_path(voc, "trainval", f"{image_id}.mat"),
                    output_path(voc, "JPEGImages", f"{image_id}.jpg"),
                    output_path(out_root, "images", folder, f"{image_id}.jpg"),
                    output_path(out_root, "annotations_ctx459", folder, f"{image_id}.tif"),
                    output_path(out_root, "annotations_ctx59", folder, f"{image_id}.png"),
                    args.overwrite,
                )
            )
    report(run_jobs(convert_pascal_image, jobs, args.workers, "Pascal Context"), out_root)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--src", type=Path, required=True, help="the VOC2010 folder (JPEGImages/, trainval/*.mat)")
    add_root_argument(parser)
    parser.add_argument(
        "--splits",
        type=Path,
        default=None,
        help="folder with train.txt and val.txt (default: VOC2010/ImageSets/SegmentationContext)",
    )


register_prepare(
    PrepareCommand(
        "pascal_context",
        "VOC2010 + Pascal Context .mat -> pascal_ctx_d2 (PC-459 .tif and PC-59 .png)",
        add_arguments,
        prepare_pascal_context,
    )
)
