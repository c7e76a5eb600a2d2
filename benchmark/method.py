"""The contract every continual method implements (baselines/ and methods/ alike).

A method owns its loop: the runner calls `learn` once per step with that step's training data, then
`predict` on validation batches with the vocabulary to segment. No hooks, no shared mutable state.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

import numpy as np

from benchmark.data.types import IGNORE_LABEL, Sample, SegmentationDataset, SegmentInfo, Vocabulary
from benchmark.registry import Registry


@dataclass
class StepData:
    """The training data of step t. Samples come with labels already filtered by the stream's label policy:
    pixels of classes outside `new_classes` are IGNORE_LABEL (and panoptic segments of other classes are
    dropped)."""

    step: int
    new_classes: list[int]  # C_t
    seen_classes: list[int]  # S_t = C_0 ∪ ... ∪ C_t
    vocabulary: Vocabulary  # the dataset's full vocabulary (names of every class id)
    dataset: SegmentationDataset  # the unfiltered training split
    indices: list[int]  # images of this step in `dataset`
    progress: Any = None  # callable(iterable, desc=..., total=...) -> iterable, for long loops

    def __len__(self) -> int:
        return len(self.indices)

    def samples(self) -> Iterator[Sample]:
        """Training samples of this step with the label policy applied."""
        iterator = self.indices if self.progress is None else self.progress(self.indices, desc=f"learn step {self.step}")
        for index in iterator:
            sample = self.dataset.load(index)
            if sample is not None:  # None: unreadable and skipped (data.on_error=skip)
                yield filter_sample(sample, self.new_classes)


def filter_sample(sample: Sample, keep_classes: list[int]) -> Sample:
    """Labels outside `keep_classes` become IGNORE_LABEL; panoptic segments of other classes become VOID."""
    sem_seg = np.where(np.isin(sample.sem_seg, keep_classes), sample.sem_seg, IGNORE_LABEL)
    pan_seg, segments = sample.pan_seg, sample.segments
    if pan_seg is not None:
        keep = set(keep_classes)
        segments = [s for s in sample.segments if s.category_id in keep]
        pan_seg = np.where(np.isin(pan_seg, [s.id for s in segments]), pan_seg, 0)
    return Sample(sample.image_id, sample.image, sem_seg, pan_seg, segments)


@dataclass
class SegmentationOutput:
    """Prediction for one image. `sem_seg` holds dataset class ids (always set); panoptic streams also get
    `pan_seg` (segment ids, 0 = no segment) with `segments` (class, score via `scores`)."""

    sem_seg: np.ndarray  # (H, W) int64 class ids from the vocabulary passed to `predict`
    pan_seg: np.ndarray | None = None  # (H, W) int64 segment ids, 0 = unassigned
    segments: list[SegmentInfo] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)  # one confidence per entry of `segments`


class ContinualMethod(ABC):
    """A continual segmentation method. Subclasses set `Config` to a dataclass of their parameters (the keys
    of configs/method/<name>.yaml, overridable as `method.KEY=VALUE`)."""

    Config: ClassVar[type]

    def __init__(self, config: Any, segmenter: Any, vocabulary: Vocabulary, seed: int = 0) -> None:
        self.config = config
        self.segmenter = segmenter  # the frozen open-vocabulary segmenter shared by every method
        self.vocabulary = vocabulary  # the dataset's full vocabulary
        self.seed = seed

    @abstractmethod
    def learn(self, step: StepData) -> None:
        """Consume step t's training data (a single pass is allowed)."""

    @abstractmethod
    def predict(self, batch: list[Sample], vocab: Vocabulary) -> list[SegmentationOutput]:
        """Segment each image with the classes of `vocab` only; ground truth in `batch` must not be read."""

    def state_dict(self) -> dict:
        """Everything needed to resume after the last learned step."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def memory_bytes(self) -> int:
        """Bytes of stored state: kNN database, replay buffer, trained parameters."""
        return 0

    def trainable_parameters(self) -> int:
        return 0


METHODS: Registry[type[ContinualMethod]] = Registry("method", base=ContinualMethod)
register_method = METHODS.register
