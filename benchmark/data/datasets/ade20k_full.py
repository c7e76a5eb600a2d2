"""ADE20K-847 (ADE20K full, 2021_17_01 release) in the detectron2 layout of MaskFormer's
`prepare_ade20k_full_sem_seg.py`: `ADE20K_2021_17_01/{images,annotations}_detectron2/{training,validation}/`,
labels as uint16 `.tif` of A-847 train ids (65535 = unlabelled).

`prepare ade20k_full --src RAW --root ROOT` writes that layout from the release, as MaskFormer's script does:
short side above 512 resized (bilinear image, nearest labels), raw class index -> train id.
"""

from __future__ import annotations

import argparse
from functools import lru_cache
from pathlib import Path

import numpy as np

from benchmark.data.catalog import DatasetSpec, PrepareCommand, register_dataset, register_prepare, semseg_layout
from benchmark.data.catalog import add_root_argument, vocabulary_field
from benchmark.data.readers import read_image
from benchmark.data.types import IGNORE_LABEL
from benchmark.data.writing import output_path, report, run_jobs, save_jpeg, save_tif16
from benchmark.errors import DataError

ADE_SHORT_SIDE = 512  # MaskFormer's prepare_ade20k_full_sem_seg.py: short side above this is resized to it

register_dataset(
    DatasetSpec(
        "ade20k_847",
        "ade20k_847",
        semseg_layout(
            "ADE20K_2021_17_01/images_detectron2/{folder}", "ADE20K_2021_17_01/annotations_detectron2/{folder}", ".tif"
        ),
        "ADE20K_2021_17_01",
        "python -m benchmark prepare ade20k_full --src ADE20K_2021_17_01 --root {root}",
    )
)


# ------------------------------------------------------------------------------------------------- resizing


def short_side_size(height: int, width: int, short_side: int = ADE_SHORT_SIDE) -> tuple[int, int] | None:
    """(new_h, new_w) when the short side exceeds `short_side`, else None; MaskFormer's rounding."""
    if width >= height > short_side:
        return short_side, round(width / float(height) * short_side)
    if height >= width > short_side:
        return round(height / float(width) * short_side), short_side
    return None


def nearest_indices(src: int, dst: int) -> np.ndarray:
    """Source index per output index exactly as OpenCV's INTER_NEAREST (`floor(x * (1 / (dst / src)))` in
    double precision), which MaskFormer's script uses for the labels."""
    inverse_scale = 1.0 / (dst / src)
    return np.minimum(np.floor(np.arange(dst) * inverse_scale).astype(np.int64), src - 1)


def resize_nearest(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    return labels[nearest_indices(labels.shape[0], height)][:, nearest_indices(labels.shape[1], width)]


def _linear_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-pixel-centre linear interpolation taps (OpenCV INTER_LINEAR, no antialiasing)."""
    position = np.maximum((np.arange(dst) + 0.5) * (src / dst) - 0.5, 0.0)
    low = np.minimum(np.floor(position).astype(np.int64), src - 1)
    high = np.minimum(low + 1, src - 1)
    return low, high, (position - low).astype(np.float32)


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (height, width, 3) uint8, matching OpenCV INTER_LINEAR up to its fixed-point
    rounding (at most 1 grey level), so images agree with the community's cv2-prepared files."""
    y_low, y_high, y_frac = _linear_taps(image.shape[0], height)
    x_low, x_high, x_frac = _linear_taps(image.shape[1], width)
    pixels = image.astype(np.float32)
    rows = pixels[y_low] * (1 - y_frac)[:, None, None] + pixels[y_high] * y_frac[:, None, None]  # (h, W, 3)
    out = rows[:, x_low] * (1 - x_frac)[None, :, None] + rows[:, x_high] * x_frac[None, :, None]  # (h, w, 3)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- conversion


def decode_ade_class_index(seg_rgb: np.ndarray) -> np.ndarray:
    """ADE20K full `*_seg.png` (H, W, 3) -> (H, W) int32 raw class index R/10*256 + G (0 = unlabelled)."""
    return (seg_rgb[..., 0].astype(np.int32) // 10) * 256 + seg_rgb[..., 1].astype(np.int32)


@lru_cache(maxsize=1)
def ade_raw_to_train_id() -> np.ndarray:
    """Lookup table raw ADE class index -> A-847 train id, 65535 for every index outside the 847."""
    raw_ids = vocabulary_field("ade20k_847", "ade_raw_id")
    table = np.full(25 * 256 + 256, IGNORE_LABEL, dtype=np.uint16)  # R/10 <= 25, G <= 255
    table[np.asarray(raw_ids)] = np.arange(len(raw_ids), dtype=np.uint16)
    return table


def find_ade_release(src: Path) -> Path:
    """The ADE20K_2021_17_01 folder, given it or its parent."""
    for base in (src, src / "ADE20K_2021_17_01"):
        if (base / "images" / "ADE").is_dir():
            return base
    raise DataError(
        f"--src {src}: no images/ADE folder in it or in {src / 'ADE20K_2021_17_01'}; give the "
        "ADE20K_2021_17_01 folder of the ADE20K full release (or its parent)"
    )


def convert_ade_image(job: tuple[Path, Path, Path, Path, bool]) -> bool:
    """One ADE20K image and its `_seg.png` -> resized jpg + uint16 tif of train ids. False when kept."""
    image_path, seg_path, out_image, out_labels, overwrite = job
    if not overwrite and out_image.is_file() and out_labels.is_file():
        return False
    image = read_image(image_path)
    class_index = decode_ade_class_index(read_image(seg_path))
    if class_index.shape != image.shape[:2]:
        raise DataError(
            f"{seg_path} is {class_index.shape[1]}x{class_index.shape[0]} but its image {image_path} is "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    new_size = short_side_size(*image.shape[:2])
    if new_size is not None:
        image = resize_bilinear(image, *new_size)
        class_index = resize_nearest(class_index, *new_size)
    save_jpeg(out_image, image)
    save_tif16(out_labels, ade_raw_to_train_id()[class_index])
    return True


def prepare_ade20k_full(args: argparse.Namespace) -> int:
    release = find_ade_release(args.src)
    out_root = output_path(args.root, "ADE20K_2021_17_01")
    jobs, missing_seg = [], 0
    # Walk the folders instead of reading index_ade20k.pkl: it lists the same images and is not always there.
    for image_path in sorted((release / "images" / "ADE").rglob("*.jpg")):
        seg_path = image_path.with_name(image_path.stem + "_seg.png")
        if not seg_path.is_file():
            missing_seg += 1
            continue
        split = "validation" if "_val_" in image_path.name else "training"
        jobs.append(
            (
                image_path,
                seg_path,
                output_path(out_root, "images_detectron2", split, image_path.name),
                output_path(out_root, "annotations_detectron2", split, image_path.stem + ".tif"),
                args.overwrite,
            )
        )
    if not jobs:
        raise DataError(f"--src {args.src}: no *.jpg with a matching *_seg.png under {release / 'images' / 'ADE'}")
    if missing_seg:
        print(f"note: {missing_seg} jpg file(s) without a *_seg.png beside them were left out")
    report(run_jobs(convert_ade_image, jobs, args.workers, "ADE20K-847"), out_root)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--src", type=Path, required=True, help="the ADE20K_2021_17_01 folder or its parent")
    add_root_argument(parser)


register_prepare(
    PrepareCommand(
        "ade20k_full",
        "ADE20K full release -> ADE20K_2021_17_01/{images,annotations}_detectron2 (A-847)",
        add_arguments,
        prepare_ade20k_full,
    )
)
