"""Joint training: at step t the head trains on every image seen so far (the union of the steps' image
lists), labelled with all seen classes S_t. It breaks the continual protocol on purpose: it is the upper
bound row every continual benchmark reports."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from baselines.trainable import TrainConfig, TrainedHeadMethod
from benchmark.data.types import Sample
from benchmark.method import StepData, filter_sample, register_method


@register_method("joint")
class Joint(TrainedHeadMethod):
    method_name = "joint"

    @dataclass
    class Config(TrainConfig):
        pass

    def __init__(self, config, segmenter, vocabulary, seed: int = 0) -> None:
        super().__init__(config, segmenter, vocabulary, seed)
        self.seen_indices: list[int] = []  # training images of all steps so far, in order of first appearance

    def training_samples(self, step: StepData) -> Iterator[Sample]:
        known = set(self.seen_indices)
        self.seen_indices += [i for i in dict.fromkeys(step.indices) if i not in known]
        indices = self.seen_indices if step.progress is None else step.progress(self.seen_indices, desc=f"load step {step.step}")
        for index in indices:
            sample = step.dataset.load(index)
            if sample is not None:
                yield filter_sample(sample, step.seen_classes)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "seen_indices": list(self.seen_indices)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.seen_indices = list(state["seen_indices"])
