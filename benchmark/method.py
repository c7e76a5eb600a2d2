"""The contract every continual method implements (baselines/ and methods/ alike).

A method owns its loop: the runner calls `learn` once per step with that step's training data, then
`predict` on validation batches with the vocabulary to segment. No hooks, no shared mutable state.
The protocol is sealed by types:
- `learn(StepData)`: step t's training samples with labels filtered to C_t, and the ids and names of S_t only;
- `predict(list[ImageInput], vocab)`: pixels and ids, never labels (the runner keeps them for the evaluator);
  `vocab` is S_t, or every class with eval.vocabulary=all;
- a method that replays earlier data keeps its own copy and counts it in `memory_bytes`;
- ground truth reaches a method on purpose only through `model.proposals=oracle` (recorded in the manifest).
"""
from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator

import numpy as np

from benchmark.data.types import IGNORE_LABEL, ImageInput, Sample, SegmentationDataset, SegmentInfo, Vocabulary
from benchmark.registry import Registry


class StepData:
    """What a method may learn from at step t, and nothing else: the step's training samples with labels already
    filtered to C_t (pixels of other classes are IGNORE_LABEL, or background under a protocol that says so: the
    vocabulary's background class, else BACKGROUND_LABEL; panoptic segments of other classes dropped), the
    classes revealed so far and their names (`vocabulary` holds S_t only). There is no handle to the dataset,
    to future classes or to validation data; a method that needs earlier steps' data keeps its own copy (and
    counts it in `memory_bytes`). Under torchrun, `sharded_samples` gives this rank's share."""

    __slots__ = ("step", "new_classes", "seen_classes", "vocabulary", "progress", "_count", "_load")

    def __init__(self, step: int, new_classes: list[int], seen_classes: list[int], vocabulary: Vocabulary,
                 count: int, load: Callable[[int], Sample | None], progress: Any = None) -> None:
        self.step = step
        self.new_classes = list(new_classes)  # C_t
        self.seen_classes = list(seen_classes)  # S_t = C_0 ∪ ... ∪ C_t
        self.vocabulary = vocabulary  # the classes of S_t (ids and names)
        self.progress = progress  # callable(iterable, desc=..., total=...) -> iterable, for long loops
        self._count = count
        self._load = load  # position in the step -> filtered sample, None when unreadable (data.on_error=skip)

    @classmethod
    def of_stream(cls, step: int, new_classes: list[int], seen_classes: list[int], vocabulary: Vocabulary,
                  dataset: SegmentationDataset, indices: list[int], progress: Any = None,
                  relabel: Callable[[Sample, Sample, list[int]], Sample] | None = None) -> "StepData":
        """The runner's constructor: step t over `indices` of `dataset`, labels filtered to `new_classes`, then
        `relabel(sample, filtered, new_classes)` (the protocol's background, benchmark/protocol.py) if given."""
        indices, keep = list(indices), list(new_classes)

        def load(position: int) -> Sample | None:
            sample = dataset.load(indices[position])
            if sample is None:
                return None
            filtered = filter_sample(sample, keep)
            return filtered if relabel is None else relabel(sample, filtered, keep)

        # a deep copy: a method that mutates its vocabulary (frozen dataclasses yield to object.__setattr__)
        # cannot change the runner's
        return cls(step, keep, seen_classes, copy.deepcopy(vocabulary.subset(seen_classes)), len(indices), load,
                   progress)

    def __len__(self) -> int:
        return self._count

    def sample_at(self, position: int) -> Sample | None:
        """The filtered training sample at `position` (0..len-1) of the step, None when unreadable."""
        return self._load(position)

    def samples(self) -> Iterator[Sample]:
        """Training samples of this step with the label policy applied (unreadable ones left out)."""
        return (sample for _, sample in self.sharded_samples(shard=False))

    def sharded_samples(self, pad: bool = False, seed: int | None = None,
                        shard: bool = True) -> Iterator[tuple[int, Sample]]:
        """(position in the step, filtered sample) for this rank's shard of the step's images (all of them
        with shard=False or without torchrun); see `distributed.shard` for pad / seed. Unreadable images are
        left out, so with pad=True the ranks' counts can then differ."""
        from benchmark import distributed

        positions = distributed.shard(range(self._count), pad=pad, seed=seed) if shard else range(self._count)
        if self.progress is not None and distributed.is_main():
            positions = self.progress(positions, desc=f"learn step {self.step}")
        for position in positions:
            sample = self._load(position)
            if sample is not None:
                yield position, sample


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

    def __init__(self, config: Any, segmenter: Any, num_classes: int, seed: int = 0) -> None:
        self.config = config
        self.segmenter = segmenter  # the frozen open-vocabulary segmenter shared by every method
        self.num_classes = num_classes  # size of the dataset's class-id space (ids 0..K-1); names come per step
        self.seed = seed

    @abstractmethod
    def learn(self, step: StepData) -> None:
        """Consume step t's training data (a single pass is allowed)."""

    @abstractmethod
    def predict(self, images: list[ImageInput], vocab: Vocabulary) -> list[SegmentationOutput]:
        """Segment each image with the classes of `vocab` only (S_t, or every class with eval.vocabulary=all);
        `images[i].panoptic` asks for panoptic output as well."""

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
