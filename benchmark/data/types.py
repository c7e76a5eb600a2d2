"""The data contract shared by readers, streams, methods and the evaluator.

Class ids are the dataset's contiguous train ids (0..K-1); IGNORE_LABEL marks pixels that are never scored
and never learned (these datasets have no background class).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from benchmark.errors import DataError

IGNORE_LABEL = 65535  # uint16 label maps of the detectron2 layouts (ADE20K-847, PC-459)
# training labels only, under a protocol whose label policy is `background` (benchmark/protocol.py) on a vocabulary
# without a background class (ADE20K): "labelled, but none of the step's classes" (MiB's class 0). Never a class id.
BACKGROUND_LABEL = 65534

VOCABULARY_DIR = Path(__file__).parent / "vocabularies"


@dataclass(frozen=True)
class ClassInfo:
    id: int  # contiguous train id, 0..K-1
    name: str  # canonical name as the community lists it
    synonyms: tuple[str, ...]  # prompt-engineering synonyms (the first is used when only one name is shown)
    isthing: bool = False  # countable object (panoptic "thing") or amorphous region ("stuff")
    frequency: str | None = None  # frequency bin where the source gives one (ADE-847: frequent/common/rare)


@dataclass(frozen=True)
class Vocabulary:
    """An ordered list of classes; `ids` are dataset class ids, so a subset keeps the dataset's numbering."""

    name: str
    classes: tuple[ClassInfo, ...]

    @property
    def ids(self) -> list[int]:
        return [c.id for c in self.classes]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def __len__(self) -> int:
        return len(self.classes)

    def subset(self, class_ids: Sequence[int]) -> "Vocabulary":
        by_id = {c.id: c for c in self.classes}
        return Vocabulary(self.name, tuple(by_id[int(i)] for i in sorted(class_ids)))

    @classmethod
    def load(cls, name_or_path: str | Path) -> "Vocabulary":
        """Load a project vocabulary file (`benchmark/data/vocabularies/<name>.json`) or a path to one."""
        path = Path(name_or_path)
        if not path.suffix:
            path = VOCABULARY_DIR / f"{name_or_path}.json"
        if not path.is_file():
            available = ", ".join(sorted(p.stem for p in VOCABULARY_DIR.glob("*.json")))
            raise DataError(f"vocabulary file not found: {path} (available: {available})")
        data = json.loads(path.read_text())
        classes = tuple(
            ClassInfo(
                id=int(c["id"]),
                name=c["name"],
                synonyms=tuple(c.get("synonyms") or [c["name"]]),
                isthing=bool(c.get("isthing", False)),
                frequency=c.get("frequency"),
            )
            for c in data["classes"]
        )
        if [c.id for c in classes] != list(range(len(classes))):
            raise DataError(f"{path}: class ids must be 0..K-1 in order")
        return cls(data["name"], classes)


@dataclass
class SegmentInfo:
    """One panoptic segment, as in COCO panoptic `segments_info` but with the contiguous class id."""

    id: int  # segment id in `pan_seg` (R + 256*G + 256^2*B of the PNG)
    category_id: int  # contiguous class id
    iscrowd: bool = False
    isthing: bool = False
    area: int = 0


@dataclass
class Sample:
    """One image with its ground truth. `sem_seg` holds class ids and IGNORE_LABEL."""

    image_id: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    sem_seg: np.ndarray  # (H, W) int64 class ids, IGNORE_LABEL = not labelled
    pan_seg: np.ndarray | None = None  # (H, W) int64 segment ids, 0 = VOID; panoptic datasets only
    segments: list[SegmentInfo] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.sem_seg.shape[0])

    @property
    def width(self) -> int:
        return int(self.sem_seg.shape[1])

    @property
    def panoptic(self) -> bool:
        return self.pan_seg is not None

    def oracle_proposals(self) -> "OracleProposals":
        """This sample's ground-truth segments as class-agnostic proposals: per instance on panoptic samples,
        per class otherwise (-1 = not covered)."""
        if self.pan_seg is not None:
            ids = np.unique(self.pan_seg)
            ids = ids[ids != 0]
            regions = np.where(self.pan_seg > 0, np.searchsorted(ids, self.pan_seg), -1)
            return OracleProposals(regions.astype(np.int32), instances=True)
        classes = np.unique(self.sem_seg)
        classes = classes[classes != IGNORE_LABEL]
        regions = np.where(self.sem_seg != IGNORE_LABEL, np.searchsorted(classes, self.sem_seg), -1)
        return OracleProposals(regions.astype(np.int32), instances=False)


@dataclass(frozen=True)
class OracleProposals:
    """Ground-truth segments without their classes: what `model.proposals=oracle` (an analysis mode that uses
    ground truth on purpose, recorded in the manifest and kept off the leaderboard's ranking) proposes."""

    regions: np.ndarray  # (H, W) int32 segment index per pixel, -1 = not covered
    instances: bool  # one region per instance (panoptic ground truth) rather than per class


@dataclass(frozen=True)
class ImageInput:
    """What `predict` receives for one validation image: pixels and identity, never labels. The runner keeps
    the ground truth and hands it to the evaluator only."""

    image_id: str
    image: np.ndarray  # (H, W, 3) uint8 RGB at the original size, read-only
    panoptic: bool = False  # the stream scores panoptic output: return pan_seg and segments too
    oracle: OracleProposals | None = None  # model.proposals=oracle only (the runner's explicit, recorded path)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def oracle_proposals(self) -> OracleProposals:
        if self.oracle is None:
            raise RuntimeError(f"image {self.image_id}: oracle proposals were asked for, but the runner did not "
                               "hand them over (only model.proposals=oracle runs get them)")
        return self.oracle

    @classmethod
    def of(cls, sample: Sample, panoptic: bool, oracle: bool = False) -> "ImageInput":
        """The label-free view of `sample` (its pixels, read-only); `oracle`: with its segments."""
        image = sample.image.view()
        image.flags.writeable = False
        return cls(sample.image_id, image, panoptic, sample.oracle_proposals() if oracle else None)


class SegmentationDataset:
    """One split of a dataset: indexable samples plus the per-image class lists that streams need.

    Readers subclass this and implement `__len__`, `load(i)` and `classes_present(i)`; the latter should be
    cheap (a stream reads it once per training image to build per-step image lists).
    """

    name: str = ""
    split: str = ""
    vocabulary: Vocabulary
    panoptic: bool = False  # True when samples carry pan_seg / segments

    def __len__(self) -> int:
        raise NotImplementedError

    def image_id(self, index: int) -> str:
        raise NotImplementedError

    def load(self, index: int) -> Sample:
        raise NotImplementedError

    def classes_present(self, index: int) -> np.ndarray:
        """Sorted class ids with at least one labelled pixel in image `index`."""
        labels = self.load(index).sem_seg
        present = np.unique(labels)
        return present[present != IGNORE_LABEL]

    def missing_files(self) -> dict[str, str]:
        """Image id -> a file the split lists for it (by a split list, an annotation file or its counterpart
        in the paired folder) that is not on disk. A run fails on any unless data.on_error=skip."""
        return {}

    def content_digest(self) -> str | None:
        """A digest of the dataset's files that its streams' hash covers (the user's `folder` datasets, whose
        content no shipped vocabulary file pins); None for the shipped datasets, whose streams hash their image
        lists and vocabulary only."""
        return None

    def label_stamp(self) -> str | None:
        """A cheap stamp of the files the labels are read from (names, sizes, modification times): cached
        per-image class lists are reused only while it is unchanged. None: do not cache them."""
        return None

    def __getitem__(self, index: int) -> Sample:
        return self.load(index)
