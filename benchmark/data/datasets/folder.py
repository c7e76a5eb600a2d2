"""`folder`: the user's own dataset, read in place from one folder with no code and no YAML of the user's:

    DIR/classes.yaml                 a list of {id, name, thing: bool, synonyms: [...]}; ids 0..K-1, any order
    DIR/images/{train,val}/*         jpg / png, paired with the label map of the same file stem
    DIR/labels/{train,val}/*.png     class ids, 8-bit (255 = ignore) or 16-bit (65535 = ignore)
    DIR/panoptic/{train,val}.json    optional: COCO panoptic annotations (category_id = the classes.yaml id)
    DIR/panoptic/{train,val}/*.png   and their segment PNGs (id = R + 256*G + 256^2*B, 0 = VOID)

`stream=folder stream.path=DIR stream.num_steps=N` (or `stream.steps=[[...],...]`) runs over `labels/`;
`stream=folder_panoptic` over `panoptic/`. The stream hash covers `folder_digest`: classes.yaml and the name and
size of every file under images/, labels/ and panoptic/. `prepare folder --root DIR --check` validates the folder
(`check_folder`) and writes nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import numpy as np

from benchmark.data.catalog import DatasetSpec, PrepareCommand, register_dataset, register_prepare, require_paths
from benchmark.data.readers import (IMAGE_EXTENSIONS, CocoPanopticFolder, SemSegFolder, check_labels,
                                    read_raw_label_map)
from benchmark.data.types import IGNORE_LABEL, ClassInfo, SegmentationDataset, Vocabulary
from benchmark.errors import DataError, UserError

CLASSES_FILE = "classes.yaml"
CLASS_KEYS = {"id", "name", "thing", "synonyms"}
CONTENT_FOLDERS = ("images", "labels", "panoptic")
IGNORE_BY_DTYPE = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}  # a label map's "not labelled" value


def _class_entry(path: Path, position: int, entry) -> ClassInfo:
    """One classes.yaml entry, checked: a mapping with an integer id, a name, an optional bool `thing` and an
    optional list of synonyms (default: the name)."""
    where = f"{path}: entry {position}"
    if not isinstance(entry, dict):
        raise DataError(f"{where} is not a mapping with id, name, thing, synonyms")
    unknown = sorted(set(entry) - CLASS_KEYS)
    if unknown:
        raise DataError(f"{where} has unknown key '{unknown[0]}' (keys: id, name, thing, synonyms)")
    class_id, name = entry.get("id"), entry.get("name")
    if not isinstance(class_id, int) or isinstance(class_id, bool) or class_id < 0:
        raise DataError(f"{where}: id must be a non-negative integer, got {class_id!r}")
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"{where} (id {class_id}): name must be a non-empty string, got {name!r}")
    thing = entry.get("thing", False)
    if not isinstance(thing, bool):
        raise DataError(f"{where} (id {class_id}): thing must be true or false, got {thing!r}")
    synonyms = entry.get("synonyms") or [name]
    if not isinstance(synonyms, list) or not all(isinstance(s, str) and s.strip() for s in synonyms):
        raise DataError(f"{where} (id {class_id}): synonyms must be a list of non-empty strings, got {synonyms!r}")
    return ClassInfo(id=class_id, name=name, synonyms=tuple(synonyms), isthing=thing)


def read_classes(root: Path) -> Vocabulary:
    """DIR/classes.yaml as a Vocabulary (ids 0..K-1, listed in any order, each once); a DataError naming the file
    and the entry otherwise. Its name, `folder-<digest of the file>`, names the class file by content."""
    import yaml

    path = Path(root) / CLASSES_FILE
    try:
        text = path.read_bytes()
        entries = yaml.safe_load(text)
    except FileNotFoundError:
        raise DataError(f"{path} not found: a folder dataset needs classes.yaml (set stream.path=DIR to the folder "
                        "holding classes.yaml, images/ and labels/)") from None
    except yaml.YAMLError as exc:
        raise DataError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{path} must be a non-empty list of {{id, name, thing, synonyms}} entries")
    classes: dict[int, ClassInfo] = {}
    for position, entry in enumerate(entries):
        info = _class_entry(path, position, entry)
        if info.id in classes:
            raise DataError(f"{path}: id {info.id} is listed twice ({classes[info.id].name!r} and {info.name!r})")
        classes[info.id] = info
    missing = sorted(set(range(len(classes))) - set(classes))
    if missing:
        raise DataError(f"{path}: ids must be 0..{len(classes) - 1} (one per class), but {missing[0]} is missing "
                        f"and {max(classes)} is listed")
    digest = hashlib.sha256(text).hexdigest()[:8]
    return Vocabulary(f"folder-{digest}", tuple(classes[i] for i in range(len(classes))))


def folder_digest(root: Path) -> str:
    """Digest of classes.yaml and of the relative path and size of every file under images/, labels/ and
    panoptic/ (both splits): the stream hash of a folder stream covers it, so an edited folder is another stream."""
    root = Path(root)
    digest = hashlib.sha256((root / CLASSES_FILE).read_bytes())
    for folder in CONTENT_FOLDERS:
        for dirpath, dirnames, filenames in os.walk(root / folder):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                digest.update(f"{path.relative_to(root).as_posix()}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def label_ignore_value(labels: np.ndarray, path: Path) -> int:
    """255 for an 8-bit map, 65535 for a 16-bit one; a DataError naming the file for any other dtype."""
    if labels.dtype not in IGNORE_BY_DTYPE:
        raise DataError(f"label map {path} is {labels.dtype}: expected an 8-bit (255 = ignore) or 16-bit "
                        "(65535 = ignore) single-channel PNG")
    return IGNORE_BY_DTYPE[labels.dtype]


def read_folder_labels(path: Path, num_classes: int) -> np.ndarray:
    """(H, W) int64 class ids, IGNORE_LABEL where the file holds its dtype's ignore value."""
    raw = read_raw_label_map(path)
    ignore = label_ignore_value(raw, path)
    check_labels(raw, num_classes, path, ignore_value=ignore)
    labels = raw.astype(np.int64)
    labels[raw == ignore] = IGNORE_LABEL
    return labels


class FolderSemSeg(SemSegFolder):
    """images/<split> and labels/<split> of a folder dataset, paired by file stem; 8- or 16-bit label maps."""

    def __init__(self, root: Path, split: str, vocabulary: Vocabulary) -> None:
        super().__init__("folder", split, root / "images" / split, root / "labels" / split, vocabulary,
                         label_ext=".png")
        self.root = root

    def load_labels(self, index: int):
        return read_folder_labels(self._labels[index], len(self.vocabulary))

    def content_digest(self) -> str:
        return folder_digest(self.root)


class FolderPanoptic(CocoPanopticFolder):
    """panoptic/<split>.json + panoptic/<split>/ over images/<split>: COCO panoptic with the classes.yaml ids."""

    def __init__(self, root: Path, split: str, vocabulary: Vocabulary) -> None:
        super().__init__("folder_panoptic", split, root / "images" / split, root / "panoptic" / f"{split}.json",
                         root / "panoptic" / split, vocabulary, list(range(len(vocabulary))))
        self.root = root

    def content_digest(self) -> str:
        return folder_digest(self.root)


def build_folder(spec: DatasetSpec, split: str, root: Path, vocabulary: Vocabulary | None) -> SegmentationDataset:
    """The folder dataset at `root` (stream.path, else data.root) with the vocabulary of its classes.yaml."""
    vocabulary = read_classes(root)
    if spec.name == "folder_panoptic":
        require_paths(spec, split, root, root / "images" / split, root / "panoptic" / f"{split}.json",
                      root / "panoptic" / split)
        return FolderPanoptic(root, split, vocabulary)
    require_paths(spec, split, root, root / "images" / split, root / "labels" / split)
    return FolderSemSeg(root, split, vocabulary)


HOW_TO = ("lay out DIR as classes.yaml + images/{{train,val}}/ + labels/{{train,val}}/ (docs/folder-dataset.md), "
          "pass stream.path=DIR, and check it with python -m benchmark prepare folder --root DIR --check")
register_dataset(DatasetSpec("folder", None, build_folder, "classes.yaml, images/ and labels/", HOW_TO))
register_dataset(DatasetSpec("folder_panoptic", None, build_folder, "classes.yaml, images/ and panoptic/", HOW_TO))

# ---------------------------------------------------------------------------------------- prepare folder --check
def _listing(folder: Path, extensions: tuple[str, ...], what: str) -> dict[str, Path]:
    """Image id (file stem) -> file of `folder`; a DataError naming the file for a missing folder, a file of
    another type or two files with one stem. Hidden files are left out."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder missing (a folder dataset holds {what}/train and {what}/val)")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if not path.is_file() or path.suffix.lower() not in extensions:
            raise DataError(f"{path}: not a {'/'.join(extensions)} file ({what}/ holds only those)")
        if path.stem in files:
            raise DataError(f"{path}: same image id '{path.stem}' as {files[path.stem]}")
        files[path.stem] = path
    if not files:
        raise DataError(f"{folder}: no {'/'.join(extensions)} files in it")
    return files


def split_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """(image, label map) of every image of the split, in image-id order; a DataError naming the file for an
    image without a label map or a label map without an image."""
    images = _listing(root / "images" / split, IMAGE_EXTENSIONS, "images")
    labels = _listing(root / "labels" / split, (".png",), "labels")
    for stem, path in images.items():
        if stem not in labels:
            raise DataError(f"{path}: no label map {root / 'labels' / split / (stem + '.png')}")
    for stem, path in labels.items():
        if stem not in images:
            raise DataError(f"{path}: no image {stem}.jpg / .png in {root / 'images' / split}")
    return [(images[stem], labels[stem]) for stem in sorted(images)]


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header (EXIF orientation applied as the reader applies it)."""
    from PIL import Image

    from benchmark.data.readers import ORIENTATION_TAG

    try:
        with Image.open(path) as image:
            width, height = image.size
            turned = image.getexif().get(ORIENTATION_TAG, 1) in (5, 6, 7, 8)
    except Exception as exc:  # PIL raises several types for truncated / corrupt files
        raise DataError(f"{path}: cannot read it as an image ({exc})") from None
    return (height, width) if turned else (width, height)


def check_pair(job: tuple[Path, Path, int]) -> None:
    """One image and its label map: readable, same size, 8- or 16-bit, every value a class id or the ignore value."""
    image_path, label_path, num_classes = job
    size = image_size(image_path)
    labels = read_raw_label_map(label_path)
    ignore = label_ignore_value(labels, label_path)
    if (labels.shape[1], labels.shape[0]) != size:
        raise DataError(f"{label_path} is {labels.shape[1]}x{labels.shape[0]} but its image {image_path} is "
                        f"{size[0]}x{size[1]}")
    bad = (labels >= num_classes) & (labels != ignore)
    if bad.any():
        raise DataError(f"{label_path}: label id {int(labels[bad][0])} is not in classes.yaml (ids 0..{num_classes - 1}, "
                        f"{ignore} = ignore)")


def check_panoptic_pair(job: tuple[Path, Path, list[int]]) -> None:
    """One image and its panoptic PNG: same size, every non-zero segment id listed in the annotation."""
    from benchmark.data.readers import read_panoptic_ids

    image_path, png_path, listed = job
    size = image_size(image_path)
    ids = read_panoptic_ids(png_path)
    if (ids.shape[1], ids.shape[0]) != size:
        raise DataError(f"{png_path} is {ids.shape[1]}x{ids.shape[0]} but its image {image_path} is {size[0]}x{size[1]}")
    unlisted = np.setdiff1d(np.unique(ids), [0, *listed])
    if unlisted.size:
        raise DataError(f"{png_path}: segment id {int(unlisted[0])} is not in its segments_info")


def run_checks(check, jobs: list, workers: int) -> None:
    """`check(job)` for every job, in `workers` processes when > 1; no progress bar, so that a problem is the
    only line on stderr."""
    if workers <= 1:
        for job in jobs:
            check(job)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(check, jobs, chunksize=16))


def check_panoptic_split(root: Path, split: str, vocabulary: Vocabulary, workers: int) -> None:
    """panoptic/<split>.json (category ids in classes.yaml, files present) and its PNGs, and an annotation for
    every image of images/<split>."""
    annotations = root / "panoptic" / f"{split}.json"
    if not annotations.is_file():
        raise DataError(f"{annotations}: missing (panoptic/ holds train.json and val.json with their PNG folders)")
    dataset = FolderPanoptic(root, split, vocabulary)  # refuses unknown category and image ids
    missing = dataset.missing_files()
    if missing:
        raise DataError(f"{next(iter(missing.values()))}: listed in {annotations} but missing on disk")
    annotated = {Path(name).stem for name in dataset._image_files}
    for stem, path in _listing(root / "images" / split, IMAGE_EXTENSIONS, "images").items():
        if stem not in annotated:
            raise DataError(f"{path}: no panoptic annotation in {annotations}")
    jobs = [(dataset.image_dir / image, dataset.panoptic_dir / ann["file_name"], [s["id"] for s in ann["segments_info"]])
            for ann, image in zip(dataset._annotations, dataset._image_files)]
    run_checks(check_panoptic_pair, jobs, workers)


def check_folder(root: Path, workers: int = 1) -> str:
    """Validate a folder dataset; the first problem raises a one-line DataError naming its file. Writes nothing.
    Returns a one-line summary."""
    if not root.is_dir():
        raise DataError(f"--root {root} is not a folder")
    vocabulary = read_classes(root)
    panoptic = (root / "panoptic").is_dir()
    counts = []
    for split in ("train", "val"):
        pairs = split_pairs(root, split)
        run_checks(check_pair, [(image, label, len(vocabulary)) for image, label in pairs], workers)
        if panoptic:
            check_panoptic_split(root, split, vocabulary, workers)
        counts.append(f"{len(pairs)} {split}")
    return (f"{len(vocabulary)} classes, {' and '.join(counts)} images checked"
            + (", with their panoptic annotations" if panoptic else ""))


def check_folder_command(args: argparse.Namespace) -> int:
    if not args.check:
        raise UserError("prepare folder reads a folder dataset in place and converts nothing: add --check to "
                        "validate it")
    summary = check_folder(Path(args.root), args.workers)
    print(f"{args.root}: {summary}; no problem found")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=None, help="the folder dataset (the folder holding classes.yaml)")
    parser.add_argument("--check", action="store_true",
                        help="validate classes.yaml, image / label pairs, sizes and label ids (writes nothing)")


register_prepare(PrepareCommand("folder", "check a folder dataset (classes.yaml, images/, labels/, panoptic/)",
                                add_arguments, check_folder_command))
