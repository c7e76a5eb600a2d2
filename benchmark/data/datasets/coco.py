"""COCO panoptic (133 classes) in the layout of the COCO 2017 release as detectron2 expects it:
`coco/{train,val}2017/`, `coco/annotations/panoptic_{train,val}2017.json`, `coco/panoptic_{train,val}2017/`.

`prepare coco_panoptic --root ROOT` optionally caches the semantic maps (`coco/panoptic_semseg_*`, MaskFormer's
prepare_coco_semantic_annos_from_panoptic_annos.py); the reader derives them otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmark.data.catalog import DatasetSpec, PrepareCommand, add_root_argument, panoptic_layout
from benchmark.data.catalog import register_dataset, register_prepare, vocabulary_field
from benchmark.data.readers import read_panoptic_ids, semantic_from_panoptic
from benchmark.data.types import IGNORE_LABEL, SegmentInfo
from benchmark.data.writing import output_path, report, run_jobs, save_png8
from benchmark.errors import DataError

register_dataset(
    DatasetSpec(
        "coco_panoptic_133",
        "coco_panoptic_133",
        panoptic_layout(
            "coco/{split}2017",
            "coco/annotations/panoptic_{split}2017.json",
            "coco/panoptic_{split}2017",
            "coco/panoptic_semseg_{split}2017",
            lambda: vocabulary_field("coco_panoptic_133", "coco_id"),
        ),
        "coco",
        "unpack COCO 2017 images and panoptic annotations into {root}/coco, then (optional, caches the "
        "semantic maps) python -m benchmark prepare coco_panoptic --root {root}",
    )
)


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


register_prepare(
    PrepareCommand(
        "coco_panoptic",
        "coco/panoptic_{train,val}2017 -> coco/panoptic_semseg_{train,val}2017 (133 classes)",
        add_root_argument,
        prepare_coco_panoptic,
    )
)
