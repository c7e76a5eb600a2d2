"""Readers for the two on-disk layouts the community uses (and the demo dataset mimics).

- `SemSegFolder`: detectron2 semantic layout: an image folder and a label folder paired by file stem, labels
  as 16-bit maps (`.tif` for ADE20K-847 / PC-459, `.png` elsewhere) holding train ids, 65535 = ignore.
- `CocoPanopticFolder`: COCO panoptic: `panoptic_*.json` + PNGs whose RGB encodes segment ids
  (id = R + 256*G + 256^2*B, 0 = VOID) + an image folder. The semantic map is derived as in MaskFormer's
  `prepare_coco_semantic_annos_from_panoptic_annos.py`: every segment (crowd included) paints its contiguous
  class id, VOID stays ignore.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

from benchmark.data.types import IGNORE_LABEL, SegmentationDataset, Sample, SegmentInfo, Vocabulary
from benchmark.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
ORIENTATION_TAG = 0x0112  # EXIF orientation: 1 = upright


def _read_pixels(path: Path, mode: str) -> np.ndarray:
    """A writable (H, W, C) uint8 copy of the image in PIL `mode`, turned upright by its EXIF orientation as
    detectron2's `read_image` does; a clear DataError naming the file when it is missing or corrupt."""
    try:
        with Image.open(path) as img:
            if img.getexif().get(ORIENTATION_TAG, 1) != 1:
                img = ImageOps.exif_transpose(img)
            return np.array(img if img.mode == mode else img.convert(mode))  # convert() copies: only when needed
    except FileNotFoundError:
        raise DataError(f"image file missing: {path}") from None
    except Exception as exc:  # PIL raises several types for truncated / corrupt files
        raise DataError(f"cannot read image {path}: {exc}") from None


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB (writable: torch.from_numpy needs that)."""
    return _read_pixels(path, "RGB")


def read_raw_label_map(path: Path) -> np.ndarray:
    """(H, W) label map in the file's own integer dtype (uint8 / uint16)."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            labels = tifffile.imread(path)
        else:
            with Image.open(path) as img:
                labels = np.asarray(img)
    except FileNotFoundError:
        raise DataError(f"label file missing: {path}") from None
    except Exception as exc:
        raise DataError(f"cannot read label map {path}: {exc}") from None
    if labels.ndim != 2 or labels.dtype.kind not in "iu":
        raise DataError(f"label map {path} must be single-channel integer, got shape {labels.shape} {labels.dtype}")
    return labels


def check_labels(labels: np.ndarray, num_classes: int, path: Path, ignore_value: int = IGNORE_LABEL) -> None:
    """DataError naming `path` when a value is neither a class id nor `ignore_value`."""
    bad = (labels >= num_classes) & (labels != ignore_value)
    if labels.dtype.kind == "i":
        bad |= labels < 0
    if bad.any():
        value = int(labels[bad][0])
        raise DataError(
            f"label map {path} holds value {value}, neither a class id (0..{num_classes - 1}) nor the ignore "
            f"value {ignore_value}"
        )


def read_checked_labels(path: Path, num_classes: int, label_ignore: int = IGNORE_LABEL) -> np.ndarray:
    """(H, W) int64 class ids with IGNORE_LABEL; `label_ignore` is the file's own ignore value (255 in 8-bit
    maps). Checked in the file's dtype before widening (4x less memory traffic than on int64)."""
    raw = read_raw_label_map(path)
    check_labels(raw, num_classes, path, ignore_value=label_ignore)
    labels = raw.astype(np.int64)
    if label_ignore != IGNORE_LABEL:
        labels[labels == label_ignore] = IGNORE_LABEL
    return labels


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic PNG colour to segment id: R + 256*G + 256^2*B."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def read_panoptic_ids(path: Path) -> np.ndarray:
    """(H, W) int64 segment ids of a COCO panoptic PNG, as `rgb_to_id(read_image(path))` but faster (480x640:
    4.4 against 5.1 ms, 2.4 of them PNG decoding): PIL expands the pixels to RGBA in C and each 4-byte pixel
    reads as one little-endian uint32."""
    rgba = _read_pixels(path, "RGBA")  # (H, W, 4) uint8, C-contiguous
    return (rgba.view("<u4")[..., 0] & 0xFFFFFF).astype(np.int64)


def listed_files(folder: Path) -> set[str]:
    """Names of the entries of `folder` (one listing: cheaper than a stat per file on large splits)."""
    return set(os.listdir(folder))


def files_stamp(paths: Sequence[Path]) -> str:
    """Digest of the names, sizes and modification times of `paths` (missing ones included as such)."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            info = os.stat(path)
            digest.update(f"{path}:{info.st_size}:{info.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            digest.update(f"{path}:missing\n".encode())
    return digest.hexdigest()


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    ids = ids.astype(np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)


class SemSegFolder(SegmentationDataset):
    """Images and label maps paired by file stem (detectron2 `load_sem_seg`), or, with `image_ids` (a split
    list), exactly those images (`<id><image_ext>`) and labels (`<id><label_ext>`), in list order. A stem with
    an image but no label map, or a label map but no image, stays in the split with its missing file in
    `missing_files()` (the run fails, or skips it with data.on_error=skip), never silently dropped.

    `label_ignore` is the value the files use for "not labelled": 65535 in the 16-bit `.tif` layouts, 255 in
    the 8-bit `.png` layouts of MaskFormer's scripts (ADE20K-150, PC-59, COCO semantic); it is read as
    IGNORE_LABEL so every dataset hands out the same ignore value.
    """

    def __init__(
        self,
        name: str,
        split: str,
        image_dir: Path,
        label_dir: Path,
        vocabulary: Vocabulary,
        label_ext: str = ".tif",
        label_ignore: int = IGNORE_LABEL,
        image_ids: Sequence[str] | None = None,
        image_ext: str = ".jpg",
    ) -> None:
        self.name, self.split, self.vocabulary = name, split, vocabulary
        self.label_ignore = label_ignore
        self.image_dir, self.label_dir = Path(image_dir), Path(label_dir)
        for folder in (self.image_dir, self.label_dir):
            if not folder.is_dir():
                raise DataError(f"dataset folder missing: {folder}")
        if image_ids is not None:  # a split list names the images (VOC: one folder holds every split)
            self._images = [self.image_dir / f"{i}{image_ext}" for i in image_ids]
            self._labels = [self.label_dir / f"{i}{label_ext}" for i in image_ids]
            return
        labels = {p.stem: p for p in self.label_dir.iterdir() if p.suffix == label_ext}
        images = {p.stem: p for p in self.image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS}
        stems = sorted(set(labels) | set(images))
        if not labels or not images:
            raise DataError(f"no image/label pairs ({label_ext}) in {self.image_dir} and {self.label_dir}")
        usual_ext = Counter(p.suffix for p in images.values()).most_common(1)[0][0]  # names a missing image
        self._images = [images.get(s, self.image_dir / f"{s}{usual_ext}") for s in stems]
        self._labels = [labels.get(s, self.label_dir / f"{s}{label_ext}") for s in stems]

    def missing_files(self) -> dict[str, str]:
        present = {folder: listed_files(folder) for folder in (self.image_dir, self.label_dir)}
        missing = {}
        for image, label in zip(self._images, self._labels):
            absent = [p for p in (image, label) if p.name not in present[p.parent]]
            if absent:
                missing[image.stem] = str(absent[0])
        return missing

    def label_stamp(self) -> str:
        return files_stamp(self._labels)

    def __len__(self) -> int:
        return len(self._images)

    def image_id(self, index: int) -> str:
        return self._images[index].stem

    def load_labels(self, index: int) -> np.ndarray:
        return read_checked_labels(self._labels[index], len(self.vocabulary), self.label_ignore)

    def load(self, index: int) -> Sample:
        image = read_image(self._images[index])
        labels = self.load_labels(index)
        if image.shape[:2] != labels.shape:
            raise DataError(
                f"label map {self._labels[index]} is {labels.shape[1]}x{labels.shape[0]} but its image "
                f"{self._images[index]} is {image.shape[1]}x{image.shape[0]}"
            )
        return Sample(image_id=self.image_id(index), image=image, sem_seg=labels)

    def classes_present(self, index: int) -> np.ndarray:
        present = np.unique(self.load_labels(index))
        return present[present != IGNORE_LABEL]


class CocoPanopticFolder(SegmentationDataset):
    """COCO panoptic annotations; category ids map to contiguous ids through `category_ids` (COCO id per
    contiguous id, in vocabulary order). `semantic_dir` optionally holds the semantic maps written once by
    `prepare coco_panoptic` (MaskFormer's `panoptic_semseg_*` layout)."""

    panoptic = True

    def __init__(
        self,
        name: str,
        split: str,
        image_dir: Path,
        panoptic_json: Path,
        panoptic_dir: Path,
        vocabulary: Vocabulary,
        category_ids: list[int],
        semantic_dir: Path | None = None,
    ) -> None:
        self.name, self.split, self.vocabulary = name, split, vocabulary
        self.panoptic_json = Path(panoptic_json)
        self.image_dir, self.panoptic_dir = Path(image_dir), Path(panoptic_dir)
        self.semantic_dir = Path(semantic_dir) if semantic_dir is not None else None
        for folder in (self.image_dir, self.panoptic_dir):
            if not folder.is_dir():
                raise DataError(f"dataset folder missing: {folder}")
        try:
            data = json.loads(Path(panoptic_json).read_text())
        except FileNotFoundError:
            raise DataError(f"panoptic annotation file missing: {panoptic_json}") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"panoptic annotation file {panoptic_json} is not valid JSON: {exc}") from None
        self._contiguous = {coco_id: i for i, coco_id in enumerate(category_ids)}
        images = {img["id"]: img for img in data["images"]}
        self._annotations = sorted(data["annotations"], key=lambda a: a["file_name"])
        unknown = [a["file_name"] for a in self._annotations if a["image_id"] not in images]
        if unknown:
            raise DataError(f"{panoptic_json}: annotation {unknown[0]} names an image_id missing from 'images'")
        self._image_files = [images[a["image_id"]]["file_name"] for a in self._annotations]
        for ann, image_file in zip(self._annotations, self._image_files):
            for file_name in (ann["file_name"], image_file):
                if Path(file_name).is_absolute() or ".." in Path(file_name).parts:
                    raise DataError(f"{panoptic_json}: file name '{file_name}' escapes the dataset folder")
            for seg in ann["segments_info"]:
                if seg["category_id"] not in self._contiguous:
                    raise DataError(
                        f"{panoptic_json}: segment {seg['id']} of {ann['file_name']} has unknown category_id "
                        f"{seg['category_id']}"
                    )
        self._isthing = {c.id: c.isthing for c in vocabulary.classes}

    def __len__(self) -> int:
        return len(self._annotations)

    def missing_files(self) -> dict[str, str]:
        listings = {folder: listed_files(folder) for folder in (self.image_dir, self.panoptic_dir)}

        def absent(folder: Path, name: str) -> bool:  # names in subfolders: one stat each
            return not (folder / name).exists() if len(Path(name).parts) > 1 else name not in listings[folder]

        missing = {}
        for index, (ann, image_file) in enumerate(zip(self._annotations, self._image_files)):
            files = [(self.image_dir, image_file), (self.panoptic_dir, ann["file_name"])]
            gone = [folder / name for folder, name in files if absent(folder, name)]
            if gone:
                missing[self.image_id(index)] = str(gone[0])
        return missing

    def label_stamp(self) -> str:
        return files_stamp([self.panoptic_json])  # classes_present reads the segments listed there

    def image_id(self, index: int) -> str:
        return Path(self._annotations[index]["file_name"]).stem

    def segments(self, index: int) -> list[SegmentInfo]:
        return [
            SegmentInfo(
                id=int(seg["id"]),
                category_id=self._contiguous[seg["category_id"]],
                iscrowd=bool(seg.get("iscrowd", 0)),
                isthing=self._isthing[self._contiguous[seg["category_id"]]],
                area=int(seg.get("area", 0)),
            )
            for seg in self._annotations[index]["segments_info"]
        ]

    def load_panoptic(self, index: int) -> tuple[np.ndarray, list[SegmentInfo]]:
        path = self.panoptic_dir / self._annotations[index]["file_name"]
        return read_panoptic_ids(path), self.segments(index)

    def load(self, index: int) -> Sample:
        image = read_image(self.image_dir / self._image_files[index])
        pan_seg, segments = self.load_panoptic(index)
        if image.shape[:2] != pan_seg.shape:
            raise DataError(
                f"panoptic PNG {self.panoptic_dir / self._annotations[index]['file_name']} is "
                f"{pan_seg.shape[1]}x{pan_seg.shape[0]} but its image is {image.shape[1]}x{image.shape[0]}"
            )
        sem_seg = self._semantic(index, pan_seg, segments)
        return Sample(self.image_id(index), image, sem_seg, pan_seg, segments)

    def _semantic(self, index: int, pan_seg: np.ndarray, segments: list[SegmentInfo]) -> np.ndarray:
        """The prepared semantic map (`prepare coco_panoptic`, 8-bit, 255 = ignore) when `semantic_dir` has
        it, else derived from the panoptic map; both give the same labels."""
        if self.semantic_dir is not None:
            path = self.semantic_dir / self._annotations[index]["file_name"]
            if path.is_file():
                sem_seg = read_checked_labels(path, len(self.vocabulary), label_ignore=255)
                if sem_seg.shape != pan_seg.shape:
                    raise DataError(
                        f"semantic map {path} is {sem_seg.shape[1]}x{sem_seg.shape[0]} but its panoptic PNG is "
                        f"{pan_seg.shape[1]}x{pan_seg.shape[0]}; delete it and rerun `prepare coco_panoptic`"
                    )
                return sem_seg
        return semantic_from_panoptic(pan_seg, segments)

    def classes_present(self, index: int) -> np.ndarray:
        return np.unique([s.category_id for s in self.segments(index)]).astype(np.int64)


def semantic_from_panoptic(pan_seg: np.ndarray, segments: list[SegmentInfo]) -> np.ndarray:
    """Every segment paints its class id (crowd included); VOID and unlisted ids stay IGNORE_LABEL."""
    sem_seg = np.full(pan_seg.shape, IGNORE_LABEL, dtype=np.int64)
    if segments:
        lookup_ids = np.array([s.id for s in segments])
        lookup_cls = np.array([s.category_id for s in segments])
        order = np.argsort(lookup_ids)
        lookup_ids, lookup_cls = lookup_ids[order], lookup_cls[order]
        pos = np.clip(np.searchsorted(lookup_ids, pan_seg), 0, len(lookup_ids) - 1)
        hit = lookup_ids[pos] == pan_seg
        sem_seg[hit] = lookup_cls[pos[hit]]
    return sem_seg
