"""Pascal VOC 2012, 21 classes (background + the 20 objects, MiB's class ids = the VOC label values), on the
layout the continual-segmentation community trains on (MiB / PLOP `data/download_voc.sh`: the VOC 2012 release
plus DeepLab's SBD-augmented labels `SegmentationClassAug`):

    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/SegmentationClassAug/<id>.png           8-bit class ids 0..20, 255 = ignore (object borders)
    VOCdevkit/VOC2012/ImageSets/Segmentation/train_aug.txt    training images (10,582 in the full release)
    VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt          validation images (the release's 1,449)

A list names one image per line, either by id (`2007_000032`) or as MiB's / DeepLab's list.zip does
(`/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png`).

`prepare voc --root ROOT [--aug DIR] [--train-list FILE]` completes and checks that layout: copies the
SegmentationClassAug maps from `--aug` when they are not in place yet, writes train_aug.txt (from `--train-list`,
e.g. MiB's `splits/train_aug.txt`, else every SegmentationClassAug map not in val.txt, which is how the 10,582
list is made) and checks every listed image / label pair (present, sizes equal, values 0..20 or 255).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from benchmark.data.catalog import DatasetSpec, PrepareCommand, add_root_argument, register_dataset, register_prepare
from benchmark.data.catalog import require_paths
from benchmark.data.readers import SemSegFolder
from benchmark.data.types import SegmentationDataset, Vocabulary
from benchmark.data.writing import atomic_write, copy_file, output_path, run_jobs
from benchmark.errors import DataError

VOC_DIR = "VOCdevkit/VOC2012"
LABEL_DIR = "SegmentationClassAug"
SPLIT_LISTS = {"train": "ImageSets/Segmentation/train_aug.txt", "val": "ImageSets/Segmentation/val.txt"}
NUM_CLASSES = 21
LABEL_IGNORE = 255  # VOC's "void" (object borders and difficult regions)


def read_image_list(path: Path) -> list[str]:
    """Image ids of a split list: the file stem of each line's first entry (an id or `/JPEGImages/<id>.jpg`)."""
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        raise DataError(f"split list missing: {path}") from None
    ids = [Path(line.split()[0]).stem for line in lines if line.strip()]
    if not ids:
        raise DataError(f"split list {path} names no image")
    return ids


def build_voc(spec: DatasetSpec, split: str, root: Path, vocabulary: Vocabulary) -> SegmentationDataset:
    voc = root / VOC_DIR
    images, labels, listing = voc / "JPEGImages", voc / LABEL_DIR, voc / SPLIT_LISTS[split]
    require_paths(spec, split, root, images, labels, listing)
    ids = [output_path(voc, i).name for i in read_image_list(listing)]  # refuses ids such as ../x
    return SemSegFolder(spec.name, split, images, labels, vocabulary, label_ext=".png", label_ignore=LABEL_IGNORE,
                        image_ids=ids)


register_dataset(
    DatasetSpec(
        "voc_21", "voc_21", build_voc, "VOCdevkit",
        "unpack VOCtrainval_11-May-2012.tar into {root} and SegmentationClassAug.zip into {root}/VOCdevkit/VOC2012, "
        "then python -m benchmark prepare voc --root {root}",
    )
)


def check_voc_pair(job: tuple[Path, Path]) -> None:
    """DataError naming the file when an image or its label map is missing, unreadable, of another size or holds
    a value that is neither a class id (0..20) nor 255."""
    image_path, label_path = job
    try:
        with Image.open(image_path) as image:
            size = image.size
        with Image.open(label_path) as label:
            labels = np.asarray(label)
    except FileNotFoundError as exc:
        raise DataError(f"file missing: {exc.filename}") from None
    except Exception as exc:  # PIL raises several types for truncated / corrupt files
        raise DataError(f"cannot read {image_path} or {label_path}: {exc}") from None
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise DataError(f"{label_path}: expected an 8-bit single-channel map, got {labels.dtype} {labels.shape}")
    if (labels.shape[1], labels.shape[0]) != size:
        raise DataError(f"{label_path} is {labels.shape[1]}x{labels.shape[0]} but {image_path} is {size[0]}x{size[1]}")
    bad = (labels >= NUM_CLASSES) & (labels != LABEL_IGNORE)
    if bad.any():
        raise DataError(f"{label_path} holds value {int(labels[bad][0])}, neither a class id (0..20) nor 255")


def prepare_voc(args: argparse.Namespace) -> int:
    voc = args.root / VOC_DIR
    if not (voc / "JPEGImages").is_dir() or not (voc / SPLIT_LISTS["val"]).is_file():
        raise DataError(f"no VOC 2012 release under {voc} (expected JPEGImages/ and {SPLIT_LISTS['val']}); unpack "
                        f"VOCtrainval_11-May-2012.tar into {args.root}")
    labels = voc / LABEL_DIR
    if args.aug is not None:
        if not args.aug.is_dir():
            raise DataError(f"--aug {args.aug} is not a folder")
        sources = sorted(args.aug.glob("*.png"))
        if not sources:
            raise DataError(f"--aug {args.aug}: no *.png label maps in it (give the unpacked SegmentationClassAug)")
        jobs = [(src, output_path(labels, src.name)) for src in sources
                if args.overwrite or not (labels / src.name).is_file()]
        run_jobs(_copy, jobs, args.workers, "SegmentationClassAug")
        print(f"copied {len(jobs)} label map(s) into {labels}")
    if not labels.is_dir():
        raise DataError(f"{labels} missing: unpack SegmentationClassAug.zip there or pass --aug DIR")
    val_ids = read_image_list(voc / SPLIT_LISTS["val"])
    if args.train_list is not None:
        train_ids = read_image_list(args.train_list)
    else:  # the augmented training set: every augmented label map outside the validation list
        val = set(val_ids)
        train_ids = sorted(p.stem for p in labels.glob("*.png") if p.stem not in val)
    overlap = sorted(set(train_ids) & set(val_ids))
    if overlap:
        raise DataError(f"{len(overlap)} training image(s) are validation images too (first: {overlap[0]})")
    train_list = voc / SPLIT_LISTS["train"]
    keep = train_list.is_file() and not args.overwrite
    if keep:
        train_ids = read_image_list(train_list)
        print(f"note: kept the existing {train_list} (--overwrite rewrites it)")
    pairs = [(output_path(voc, "JPEGImages", f"{i}.jpg"), output_path(labels, f"{i}.png")) for i in train_ids + val_ids]
    run_jobs(check_voc_pair, pairs, args.workers, "VOC check")
    if not keep:  # written only once every listed pair passed the check
        atomic_write(train_list, lambda tmp: tmp.write_text("".join(f"{i}\n" for i in train_ids)))
    print(f"VOC 2012 under {voc}: {len(train_ids)} training and {len(val_ids)} validation images, all checked")
    return 0


def _copy(job: tuple[Path, Path]) -> None:
    copy_file(*job)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_root_argument(parser)
    parser.add_argument("--aug", type=Path, default=None,
                        help="the unpacked SegmentationClassAug folder, copied into VOC2012/ when given")
    parser.add_argument("--train-list", type=Path, default=None,
                        help="training list to use (e.g. MiB's splits/train_aug.txt); default: every augmented map "
                             "outside val.txt")


register_prepare(
    PrepareCommand("voc", "VOC 2012 + SegmentationClassAug -> checked layout with ImageSets/Segmentation/train_aug.txt",
                   add_arguments, prepare_voc)
)
