"""`python -m benchmark prepare NAME`: convert a dataset release into the detectron2 layout the readers use,
producing the same files as the community's scripts (MaskFormer / ODISE / FC-CLIP `datasets/prepare_*.py`)
so results stay comparable with published numbers.

- `ade20k_full --src RAW --dst ROOT`: ADE20K full release -> `ADE20K_2021_17_01/{images,annotations}_detectron2`
- `pascal_context --src VOC2010 --dst ROOT`: VOC2010 + Pascal Context `.mat` -> `pascal_ctx_d2` (459 and 59)
- `coco_panoptic --root ROOT`: COCO panoptic PNGs -> `coco/panoptic_semseg_{train,val}2017` (133 classes)
- `ade20k_150 --root ROOT`: ADEChallengeData2016 annotations -> `annotations_detectron2` (150 classes)
- `ade20k_150_panoptic --root ROOT`: ADEChallengeData2016 semantic + instance annotations ->
  `ade20k_panoptic_{train,val}{.json,/}` (COCO panoptic format, Mask2Former's prepare_ade20k_pan_seg.py)

Every file is written to a temporary name in its final folder and renamed (a killed run never leaves a
half-written file); existing outputs are kept unless `--overwrite`, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from benchmark.data.datasets import SPLIT_FOLDERS, default_data_root, vocabulary_field
from benchmark.data.readers import id_to_rgb, read_image, read_panoptic_ids, semantic_from_panoptic
from benchmark.data.types import IGNORE_LABEL, SegmentInfo
from benchmark.errors import DataError, UserError

ADE_SHORT_SIDE = 512  # MaskFormer's prepare_ade20k_full_sem_seg.py: short side above this is resized to it
JPEG_QUALITY = 75  # PIL's default, which MaskFormer's script uses when it re-saves the images
PC459_NUM_CLASSES = 459
# PC-59 classes as 1-based PC-459 LabelMap values, in PC-59 id order (the Detail API subset used by
# ODISE / FC-CLIP prepare_pascal_ctx_sem_seg.py); every other value is ignore in the 59-class maps
PC59_LABELMAP_VALUES = (
    2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98, 104, 105, 113, 115, 144, 158,
    159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295, 296, 308, 324, 326, 347, 349, 354, 355, 360,
    366, 368, 397, 415, 416, 420, 424, 427, 440, 445, 454, 458,
)  # fmt: skip


# ---------------------------------------------------------------------------------------------- file helpers

_UMASK = os.umask(0)
os.umask(_UMASK)


def output_path(root: Path, *parts: str) -> Path:
    """`root/parts...`, refusing any part that could leave `root` (`..`, absolute, separators)."""
    for part in parts:
        if part in ("", ".", "..") or "/" in part or "\\" in part or ".." in Path(part).parts:
            raise DataError(f"refusing to write '{part}' under {root}: not a plain file or folder name")
    return root.joinpath(*parts)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Run `write(tmp)` on a temporary file in `path`'s folder, then rename it to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_jpeg(path: Path, image: np.ndarray) -> None:
    atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format="JPEG", quality=JPEG_QUALITY))


def save_tif16(path: Path, labels: np.ndarray) -> None:
    import tifffile

    atomic_write(path, lambda tmp: tifffile.imwrite(tmp, labels.astype(np.uint16)))


def save_png8(path: Path, labels: np.ndarray) -> None:
    atomic_write(path, lambda tmp: Image.fromarray(labels.astype(np.uint8)).save(tmp, format="PNG"))


def copy_file(src: Path, dst: Path) -> None:
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def run_jobs(convert: Callable, jobs: Sequence, workers: int, desc: str) -> list:
    """`convert(job)` for every job with a tqdm bar, in `workers` processes when > 1."""
    if workers <= 1:
        return [convert(job) for job in tqdm(jobs, desc=desc, unit="img")]
    with ProcessPoolExecutor(workers) as pool:
        return list(tqdm(pool.map(convert, jobs, chunksize=16), total=len(jobs), desc=desc, unit="img"))


def report(results: Iterable[bool], dst: Path) -> None:
    results = list(results)
    written = sum(results)
    print(f"wrote {written} image(s), kept {len(results) - written} already prepared, under {dst}")


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


# ----------------------------------------------------------------------------------------------- ADE20K full


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
    out_root = output_path(args.dst, "ADE20K_2021_17_01")
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


# -------------------------------------------------------------------------------------------- Pascal Context


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
    out_root = output_path(args.dst, "pascal_ctx_d2")
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


# --------------------------------------------------------------------------------------------- COCO panoptic


def convert_coco_panoptic(job: tuple[Path, list[SegmentInfo], Path, bool]) -> bool:
    """Panoptic PNG -> 8-bit semantic map (contiguous ids, 255 = VOID), as MaskFormer's
    prepare_coco_semantic_annos_from_panoptic_annos.py: every segment, crowd included, paints its class."""
    panoptic_path, segments, out_path, overwrite = job
    if not overwrite and out_path.is_file():
        return False
    semantic = semantic_from_panoptic(read_panoptic_ids(panoptic_path), segments)
    semantic[semantic == IGNORE_LABEL] = 255
    save_png8(out_path, semantic)
    return True


def prepare_coco_panoptic(args: argparse.Namespace) -> int:
    coco = output_path(args.root, "coco")
    contiguous = {coco_id: i for i, coco_id in enumerate(vocabulary_field("coco_panoptic_133", "coco_id"))}
    jobs = []
    for split in ("train", "val"):
        annotation_file = coco / "annotations" / f"panoptic_{split}2017.json"
        if not annotation_file.is_file():
            print(f"note: {annotation_file} not found, {split} split left out")
            continue
        try:
            annotations = json.loads(annotation_file.read_text())["annotations"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise DataError(f"{annotation_file} is not a COCO panoptic annotation file: {exc!r}") from None
        for ann in annotations:
            segments = []
            for seg in ann["segments_info"]:
                if seg["category_id"] not in contiguous:
                    raise DataError(
                        f"{annotation_file}: {ann['file_name']} has unknown category_id {seg['category_id']}"
                    )
                segments.append(SegmentInfo(id=int(seg["id"]), category_id=contiguous[seg["category_id"]]))
            jobs.append(
                (
                    output_path(coco, f"panoptic_{split}2017", ann["file_name"]),
                    segments,
                    output_path(coco, f"panoptic_semseg_{split}2017", ann["file_name"]),
                    args.overwrite,
                )
            )
    if not jobs:
        raise DataError(
            f"no COCO panoptic annotations under {coco / 'annotations'} (expected panoptic_train2017.json or "
            "panoptic_val2017.json); set --root to the folder holding coco/"
        )
    report(run_jobs(convert_coco_panoptic, jobs, args.workers, "COCO panoptic -> semantic"), coco)
    return 0


# ----------------------------------------------------------------------------------------------- ADE20K-150


def convert_ade150_labels(job: tuple[Path, Path, bool]) -> bool:
    """ADEChallengeData2016 annotation (0 = unlabelled, 1..150) -> 0..149 with 255 ignore, as MaskFormer's
    prepare_ade20k_sem_seg.py (uint8 `x - 1` wraps 0 to 255)."""
    src, dst, overwrite = job
    if not overwrite and dst.is_file():
        return False
    try:
        with Image.open(src) as img:
            labels = np.asarray(img)
    except Exception as exc:
        raise DataError(f"cannot read label map {src}: {exc}") from None
    if labels.dtype != np.uint8 or labels.ndim != 2 or labels.max() > 150:
        raise DataError(f"{src}: expected an 8-bit single-channel map of 0..150, got {labels.dtype} {labels.shape}")
    save_png8(dst, labels - np.uint8(1))
    return True


def prepare_ade20k_150(args: argparse.Namespace) -> int:
    ade = output_path(args.root, "ADEChallengeData2016")
    jobs = [
        (path, output_path(ade, "annotations_detectron2", folder, path.name), args.overwrite)
        for folder in ("training", "validation")
        for path in sorted((ade / "annotations" / folder).glob("*.png"))
    ]
    if not jobs:
        raise DataError(f"no annotations under {ade / 'annotations'}; unpack ADEChallengeData2016.zip into {args.root}")
    report(run_jobs(convert_ade150_labels, jobs, args.workers, "ADE20K-150"), ade)
    return 0


# -------------------------------------------------------------------------------------- ADE20K-150 panoptic


@lru_cache(maxsize=1)
def ade150_panoptic_tables() -> tuple[tuple[bool, ...], tuple[int, ...]]:
    """(isthing per A-150 class, A-150 class of each instance category 1..100 at index k - 1).

    The 100 instance categories of ADEChallengeData2016's `annotations_instance` are the 100 thing classes of
    A-150 in A-150 order (Mask2Former's `ade20k_instance_catid_mapping.txt` is this monotone mapping), so both
    tables come from the vocabulary's `isthing` field.
    """
    isthing = tuple(bool(v) for v in vocabulary_field("ade20k_150", "isthing"))
    return isthing, tuple(c for c, thing in enumerate(isthing) if thing)


def _bbox(mask: np.ndarray) -> list[int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def ade150_panoptic_segments(semantic: np.ndarray, instance: np.ndarray, source: Path
                             ) -> tuple[np.ndarray, list[dict]]:
    """One image: (panoptic id map, COCO `segments_info`), as Mask2Former's prepare_ade20k_pan_seg.py.

    semantic: (H, W) uint8, 0 = unlabelled, 1..150; instance: (H, W, 3) uint8, R = instance category 1..100,
    G = instance id (0 = none). Stuff segments come from the semantic map (one per stuff class; thing classes
    there are skipped), thing segments from the instance map, pasted over the stuff where the two overlap. As
    in that script a stuff segment's `area` and `bbox` are measured before the things are pasted (panopticapi
    reads `area` from the JSON, so this keeps PQ comparable with published numbers). Segment ids are 1, 2, ...
    in that order (the script draws random colours; ids do not change any metric).
    """
    isthing, thing_classes = ade150_panoptic_tables()
    if semantic.ndim != 2 or instance.ndim != 3 or instance.shape[:2] != semantic.shape:
        raise DataError(f"{source}: semantic map {semantic.shape} and instance map {instance.shape} do not match")
    pan = np.zeros(semantic.shape, dtype=np.int64)
    segments: list[dict] = []
    for value in np.unique(semantic):
        category = int(value) - 1
        if value == 0 or isthing[category]:
            continue
        mask = semantic == value
        pan[mask] = len(segments) + 1
        segments.append({"id": len(segments) + 1, "category_id": category, "area": int(mask.sum()),
                         "bbox": _bbox(mask), "iscrowd": 0})
    categories, instance_ids = instance[..., 0], instance[..., 1]
    for instance_id in np.unique(instance_ids):
        if instance_id == 0:
            continue
        mask = instance_ids == instance_id
        labels = np.unique(categories[mask])
        if labels.size != 1 or not 1 <= labels[0] <= len(thing_classes):
            raise DataError(f"{source}: instance {instance_id} has instance category {labels.tolist()}, expected one "
                            f"value in 1..{len(thing_classes)}")
        pan[mask] = len(segments) + 1
        segments.append({"id": len(segments) + 1, "category_id": thing_classes[labels[0] - 1],
                         "area": int(mask.sum()), "bbox": _bbox(mask), "iscrowd": 0})
    return pan, segments


def convert_ade150_panoptic(job: tuple[Path, Path, Path, Path, bool]) -> tuple[bool, dict, dict]:
    """One image -> its panoptic PNG (kept when present, unless overwrite) and its JSON image + annotation."""
    image, semantic_path, instance_path, dst, overwrite = job
    maps = []
    for path in (semantic_path, instance_path):
        try:
            with Image.open(path) as img:
                maps.append(np.asarray(img))
        except FileNotFoundError:
            raise DataError(f"{image} has no annotation {path}") from None
        except Exception as exc:
            raise DataError(f"cannot read annotation {path}: {exc}") from None
    semantic, instance = maps
    if semantic.dtype != np.uint8 or instance.dtype != np.uint8:
        raise DataError(f"{semantic_path} / {instance_path}: expected 8-bit PNGs, got {semantic.dtype} / "
                        f"{instance.dtype}")
    pan, segments = ade150_panoptic_segments(semantic, instance, instance_path)
    written = overwrite or not dst.is_file()
    if written:
        atomic_write(dst, lambda tmp: Image.fromarray(id_to_rgb(pan)).save(tmp, format="PNG"))
    stem = image.stem
    info = {"id": stem, "file_name": image.name, "width": int(pan.shape[1]), "height": int(pan.shape[0])}
    return written, info, {"image_id": stem, "file_name": f"{stem}.png", "segments_info": segments}


def prepare_ade20k_150_panoptic(args: argparse.Namespace) -> int:
    ade = output_path(args.root, "ADEChallengeData2016")
    isthing, _ = ade150_panoptic_tables()
    names, colors = vocabulary_field("ade20k_150", "name"), vocabulary_field("ade20k_150", "color")
    categories = [{"id": c, "name": names[c], "isthing": int(isthing[c]), "color": colors[c]}
                  for c in range(len(isthing))]
    images_found = 0
    for split, folder in (("train", "training"), ("val", "validation")):
        images = sorted((ade / "images" / folder).glob("*.jpg"))
        images_found += len(images)
        if not images:
            continue
        jobs = [(image, ade / "annotations" / folder / f"{image.stem}.png",
                 ade / "annotations_instance" / folder / f"{image.stem}.png",
                 output_path(ade, f"ade20k_panoptic_{split}", f"{image.stem}.png"), args.overwrite)
                for image in images]
        results = run_jobs(convert_ade150_panoptic, jobs, args.workers, f"ADE20K-150 panoptic {split}")
        panoptic_json = {"images": [info for _, info, _ in results],
                         "annotations": [annotation for _, _, annotation in results], "categories": categories}
        atomic_write(ade / f"ade20k_panoptic_{split}.json",
                     lambda tmp: tmp.write_text(json.dumps(panoptic_json)))  # noqa: B023 (called at once)
        report((written for written, _, _ in results), ade / f"ade20k_panoptic_{split}")
    if not images_found:
        raise DataError(f"no images under {ade / 'images'}/{{training,validation}}; unpack ADEChallengeData2016.zip "
                        f"and the instance annotations (annotations_instance/) into {args.root}")
    return 0


# ---------------------------------------------------------------------------------------------------- CLI


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ade20k_full": prepare_ade20k_full,
    "pascal_context": prepare_pascal_context,
    "coco_panoptic": prepare_coco_panoptic,
    "ade20k_150": prepare_ade20k_150,
    "ade20k_150_panoptic": prepare_ade20k_150_panoptic,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark prepare", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="dataset", required=True, metavar="DATASET")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help)
        command.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
        command.add_argument("--overwrite", action="store_true", help="rewrite files that already exist")
        return command

    ade = add("ade20k_full", "ADE20K full release -> ADE20K_2021_17_01/{images,annotations}_detectron2 (A-847)")
    ade.add_argument("--src", type=Path, required=True, help="the ADE20K_2021_17_01 folder or its parent")
    ade.add_argument(
        "--dst", type=Path, default=None, help="data root to write into (default: $DETECTRON2_DATASETS or ./datasets)"
    )
    pascal = add("pascal_context", "VOC2010 + Pascal Context .mat -> pascal_ctx_d2 (PC-459 .tif and PC-59 .png)")
    pascal.add_argument("--src", type=Path, required=True, help="the VOC2010 folder (JPEGImages/, trainval/*.mat)")
    pascal.add_argument(
        "--dst", type=Path, default=None, help="data root to write into (default: $DETECTRON2_DATASETS or ./datasets)"
    )
    pascal.add_argument(
        "--splits",
        type=Path,
        default=None,
        help="folder with train.txt and val.txt (default: VOC2010/ImageSets/SegmentationContext)",
    )
    for name, help in (
        ("coco_panoptic", "coco/panoptic_{train,val}2017 -> coco/panoptic_semseg_{train,val}2017 (133 classes)"),
        ("ade20k_150", "ADEChallengeData2016/annotations -> annotations_detectron2 (A-150)"),
        ("ade20k_150_panoptic", "ADEChallengeData2016 annotations + annotations_instance -> "
                                "ade20k_panoptic_{train,val} (A-150 panoptic, COCO format)"),
    ):
        add(name, help).add_argument(
            "--root", type=Path, default=None, help="data root (default: $DETECTRON2_DATASETS or ./datasets)"
        )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "src", None) is not None and not args.src.is_dir():
        raise DataError(f"--src {args.src} is not a folder")
    for key in ("dst", "root"):
        if key in args and getattr(args, key) is None:
            setattr(args, key, default_data_root())
    if args.workers < 1:
        raise UserError(f"--workers {args.workers}: must be at least 1")
    return COMMANDS[args.dataset](args)
