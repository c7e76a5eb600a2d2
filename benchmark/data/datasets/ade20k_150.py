"""ADE20K-150 (ADEChallengeData2016), semantic and panoptic, in the layouts of MaskFormer / Mask2Former:
`ADEChallengeData2016/images/{training,validation}/`, `annotations_detectron2/` (uint8, 0..149, 255 = ignore;
prepare_ade20k_sem_seg.py) and `ade20k_panoptic_{train,val}{.json,/}` (COCO panoptic format, category ids
0..149; prepare_ade20k_pan_seg.py).

`prepare ade20k_150 --root ROOT` and `prepare ade20k_150_panoptic --root ROOT` write them from the release.
"""

from __future__ import annotations

import argparse
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from benchmark.data.catalog import DatasetSpec, PrepareCommand, add_root_argument, panoptic_layout
from benchmark.data.catalog import register_dataset, register_prepare, semseg_layout, vocabulary_field
from benchmark.data.readers import id_to_rgb
from benchmark.data.writing import atomic_write, output_path, report, run_jobs, save_png8
from benchmark.errors import DataError

register_dataset(
    DatasetSpec(
        "ade20k_150",
        "ade20k_150",
        semseg_layout(
            "ADEChallengeData2016/images/{folder}", "ADEChallengeData2016/annotations_detectron2/{folder}", ".png", 255
        ),
        "ADEChallengeData2016",
        "python -m benchmark prepare ade20k_150 --root {root} (after unpacking ADEChallengeData2016.zip there)",
    )
)
register_dataset(
    DatasetSpec(
        "ade20k_150_panoptic",
        "ade20k_150",
        # Mask2Former's prepare_ade20k_pan_seg.py writes category ids 0..149 = the A-150 contiguous ids
        panoptic_layout(
            "ADEChallengeData2016/images/{folder}",
            "ADEChallengeData2016/ade20k_panoptic_{split}.json",
            "ADEChallengeData2016/ade20k_panoptic_{split}",
            None,
            lambda: list(range(150)),
        ),
        "ADEChallengeData2016",
        "unpack ADEChallengeData2016.zip and its instance annotations (annotations_instance/) into {root}, then "
        "python -m benchmark prepare ade20k_150_panoptic --root {root}",
    )
)


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


register_prepare(
    PrepareCommand(
        "ade20k_150",
        "ADEChallengeData2016/annotations -> annotations_detectron2 (A-150)",
        add_root_argument,
        prepare_ade20k_150,
    )
)
register_prepare(
    PrepareCommand(
        "ade20k_150_panoptic",
        "ADEChallengeData2016 annotations + annotations_instance -> ade20k_panoptic_{train,val} (A-150 panoptic, "
        "COCO format)",
        add_root_argument,
        prepare_ade20k_150_panoptic,
    )
)
