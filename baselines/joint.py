"""Joint training: at step t the head trains on every image seen so far, labelled with every class revealed
for it so far. It is the upper-bound row every continual benchmark reports, and the protocol still binds it:
it keeps its own copy of what it trains on, each seen image's frozen input and label grid, in a store on disk
(memory does not grow with the images; `memory_bytes` counts the store), and an image that returns in a later
step adds that step's labels to the ones it already has (merged on the label grid: nearest sampling commutes
with the merge, so this is the grid of the merged label map). In overlap mode (every training
image with a pixel of C_t belongs to step t) that is exactly the image labelled with S_t; in disjoint or
partition mode it is what the stream revealed, no more. Only the pixels of each step's own classes are kept:
under a protocol that relabels the other classes as background (benchmark/protocol.py) that background would
overwrite the classes earlier steps revealed."""
from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import repeat
from typing import Iterator

import numpy as np
import torch

from baselines import cached_head
from baselines.trainable import GATHER_CHUNK, TrainConfig, TrainedHeadMethod, TrainingSet, label_grid
from benchmark.data.types import IGNORE_LABEL, Sample
from benchmark.method import StepData, register_method


def revealed(sample: Sample, new_classes: list[int]) -> Sample:
    """The sample labelled with the step's own classes only (IGNORE_LABEL elsewhere)."""
    return replace(sample, sem_seg=np.where(np.isin(sample.sem_seg, new_classes), sample.sem_seg, IGNORE_LABEL))


@register_method("joint")
class Joint(TrainedHeadMethod):
    method_name = "joint"

    @dataclass
    class Config(TrainConfig):
        pass

    def __init__(self, config, segmenter, num_classes: int, seed: int = 0) -> None:
        super().__init__(config, segmenter, num_classes, seed)
        # model=cached: per seen image its proposals' votes over the labels revealed so far (cached_head.py)
        self.votes: dict[str, np.ndarray] = {}
        if self.cached is not None:
            return
        self.store = TrainingSet(segmenter.storage_dtype)  # every image seen with a labelled sample
        self.seen: dict[str, int | None] = {}  # image id -> its row in the store (None: no labelled sample yet),
        # in first-seen order: the order joint trains in

    def _grid(self, sample: Sample) -> np.ndarray:
        return label_grid(sample.sem_seg, self.grid, self.config.label_samples_per_cell)

    def _new_images(self, step: StepData, labelled: list[str]) -> Iterator[Sample]:
        """The step's images without a row yet (noting in `labelled` those with a labelled sample, in order);
        the known ones get the step's labels merged into their stored grid instead."""
        for sample in map(revealed, step.samples(), repeat(step.new_classes)):
            row = self.seen.setdefault(sample.image_id, None)
            grid = self._grid(sample)
            if row is not None:  # the classes of different steps label disjoint pixels
                known = self.store.targets.read([row])[0]
                self.store.targets.write(row, np.where(grid != IGNORE_LABEL, grid, known))
                continue
            if np.any(grid != IGNORE_LABEL):
                labelled.append(sample.image_id)
            yield sample

    def learn(self, step: StepData) -> None:
        if self.cached is not None:
            self._learn_cached(step)
            return
        labelled: list[str] = []
        fresh = self.training_set(self._new_images(step, labelled))  # frozen inputs of the new images only
        try:
            for start in range(0, len(fresh), GATHER_CHUNK):  # into the store, a window at a time
                inputs, targets = fresh.batch(range(start, min(start + GATHER_CHUNK, len(fresh))))
                self.store.append(inputs, targets.numpy())
        finally:
            fresh.close()
        first = len(self.store) - len(labelled)
        self.seen.update({image_id: first + i for i, image_id in enumerate(labelled)})
        data = self.store.subset([row for row in self.seen.values() if row is not None])
        self.fit(data, step)
        self.after_step(step, data)

    def _learn_cached(self, step: StepData) -> None:
        samples = list(map(revealed, step.samples(), repeat(step.new_classes)))
        for start in range(0, len(samples), self.segmenter.config.batch_size):
            batch = samples[start:start + self.segmenter.config.batch_size]
            for sample, votes in zip(batch, self.cached.image_votes(batch)):
                known = self.votes.get(sample.image_id)
                self.votes[sample.image_id] = votes if known is None else cached_head.merge_votes(known, votes)
        data = self.cached.joint_training_set(self.votes)
        try:
            self.fit(data, step)
            self.after_step(step, data)
        finally:
            data.close()

    def state_dict(self) -> dict:
        """The head, the seen images and the store itself: a checkpoint streams the store to side files
        (benchmark/run/checkpoint.py), so saving never holds the stored images in memory."""
        if self.cached is not None:
            return {**super().state_dict(), "votes": dict(self.votes)}
        return {**super().state_dict(), "seen": dict(self.seen), "inputs": self.store.inputs,
                "targets": self.store.targets}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.cached is not None:
            self.votes = dict(state["votes"])
            return
        self.store.close()
        self.store = TrainingSet(self.segmenter.storage_dtype)
        inputs, targets = state["inputs"], state["targets"]
        if isinstance(inputs, np.ndarray):  # a checkpoint written before the store went to side files
            self.store.append(torch.from_numpy(inputs), targets)
        elif inputs is not None:  # a copy: the state's store may be another method's (or a checkpoint's)
            self.store.inputs, self.store.targets = inputs.copy(), targets.copy()
        self.seen = dict(state["seen"])

    def memory_bytes(self) -> int:
        if self.cached is not None:
            return super().memory_bytes() + sum(v.nbytes for v in self.votes.values())
        return super().memory_bytes() + self.store.nbytes
