"""Joint training: at step t the head trains on every image seen so far, labelled with every class revealed
for it so far. It is the upper-bound row every continual benchmark reports, and the protocol still binds it:
it keeps its own copy of each step's images and label maps (counted in `memory_bytes`), and an image that
returns in a later step adds that step's labels to the ones it already has. In overlap mode (every training
image with a pixel of C_t belongs to step t) that is exactly the image labelled with S_t; in disjoint or
partition mode it is what the stream revealed, no more."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from baselines.trainable import TrainConfig, TrainedHeadMethod
from benchmark.data.types import IGNORE_LABEL, Sample
from benchmark.method import StepData, register_method


@register_method("joint")
class Joint(TrainedHeadMethod):
    method_name = "joint"

    @dataclass
    class Config(TrainConfig):
        pass

    def __init__(self, config, segmenter, num_classes: int, seed: int = 0) -> None:
        super().__init__(config, segmenter, num_classes, seed)
        self.seen: dict[str, Sample] = {}  # image id -> image with its labels of all steps so far (first-seen order)

    def training_samples(self, step: StepData) -> Iterator[Sample]:
        for sample in step.samples():
            labels = sample.sem_seg.astype(np.uint16)  # class ids and IGNORE_LABEL fit
            known = self.seen.get(sample.image_id)
            if known is not None:  # the classes of different steps label disjoint pixels
                labels = np.where(labels != IGNORE_LABEL, labels, known.sem_seg)
            self.seen[sample.image_id] = Sample(sample.image_id, sample.image if known is None else known.image, labels)
        return iter(list(self.seen.values()))

    def state_dict(self) -> dict:
        return {**super().state_dict(), "seen": [(s.image_id, s.image, s.sem_seg) for s in self.seen.values()]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.seen = {image_id: Sample(image_id, image, labels) for image_id, image, labels in state["seen"]}

    def memory_bytes(self) -> int:
        return super().memory_bytes() + sum(s.image.nbytes + s.sem_seg.nbytes for s in self.seen.values())
