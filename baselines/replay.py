"""Replay: fine-tuning plus a memory of earlier steps' images with their ORIGINAL step labels (an image kept
from step j is replayed with the labels of C_j only, as it was seen then).

The memory holds `mem_size` images chosen by avalanche's storage policies: `experience_balanced`
(ExperienceBalancedBuffer: the memory split equally over the steps so far, reservoir sampling inside each
step) or `reservoir` (ReservoirSamplingBuffer over the whole stream). They run on an AvalancheDataset of
records (key, step, height, width); the method keeps its own copy of each kept image and label map (the
protocol gives it no way back to the dataset), and `memory_bytes` counts them (H·W·3 uint8 + H·W uint16 each).
Avalanche draws the reservoir keys from torch's global generator; we fork it and seed it from the run seed
and the step, so the memory does not depend on anything else that consumed random numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Iterator

import numpy as np
import torch

from baselines.trainable import TrainConfig, TrainedHeadMethod, TrainingSet
from benchmark.data.types import Sample
from benchmark.errors import UserError
from benchmark.method import StepData, register_method

Record = tuple[int, int, int, int]  # (key in the kept samples, step whose labels apply, height, width)
STORAGES = ("experience_balanced", "reservoir")


class ReplayMemory:
    """Avalanche's storage policy over image records, with a seeded, resumable state."""

    def __init__(self, mem_size: int, storage: str, seed: int) -> None:
        self.mem_size = mem_size
        self.storage = storage
        self.seed = seed
        self.policy = None  # built on first use: importing avalanche takes seconds

    def _new_policy(self):
        from avalanche.training.storage_policy import ExperienceBalancedBuffer, ReservoirSamplingBuffer

        return ExperienceBalancedBuffer(self.mem_size) if self.storage == "experience_balanced" else ReservoirSamplingBuffer(self.mem_size)

    def add(self, step: int, records: list[Record]) -> None:
        """Offer the images of `step` to the memory (after the step is learned)."""
        from types import SimpleNamespace

        from avalanche.benchmarks.utils import AvalancheDataset

        if self.policy is None:
            self.policy = self._new_policy()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + step)
            self.policy.post_adapt(None, SimpleNamespace(dataset=AvalancheDataset([records])))

    def _groups(self) -> list:
        if self.policy is None:
            return []
        return list(self.policy.buffer_groups.values()) if hasattr(self.policy, "buffer_groups") else [self.policy]

    def records(self) -> list[Record]:
        return [tuple(int(v) for v in group.buffer[i]) for group in self._groups() for i in range(len(group.buffer))]

    def state_dict(self) -> dict:
        """Each reservoir group's records and sampling keys (what the policy needs to go on)."""
        return {"groups": [{"records": [tuple(int(v) for v in g.buffer[i]) for i in range(len(g.buffer))],
                            "weights": g._buffer_weights.clone(), "max_size": g.max_size} for g in self._groups()]}

    def load_state_dict(self, state: dict) -> None:
        from avalanche.benchmarks.utils import AvalancheDataset
        from avalanche.training.storage_policy import ReservoirSamplingBuffer

        self.policy = self._new_policy()
        groups = []
        for saved in state["groups"]:
            group = ReservoirSamplingBuffer(saved["max_size"])
            group.buffer = AvalancheDataset([[tuple(r) for r in saved["records"]]])
            group._buffer_weights = saved["weights"].clone()
            groups.append(group)
        if hasattr(self.policy, "buffer_groups"):
            self.policy.buffer_groups = dict(enumerate(groups))
            self.policy._num_exps = len(groups)
        elif groups:
            self.policy = groups[0]


@register_method("replay")
class Replay(TrainedHeadMethod):
    method_name = "replay"

    @dataclass
    class Config(TrainConfig):
        mem_size: int = 40  # images kept in the replay memory
        storage: str = "experience_balanced"  # experience_balanced | reservoir (avalanche storage policies)

    def __init__(self, config, segmenter, num_classes: int, seed: int = 0) -> None:
        super().__init__(config, segmenter, num_classes, seed)
        if config.storage not in STORAGES:
            raise UserError(f"method.storage='{config.storage}' is not one of: {', '.join(STORAGES)}")
        if config.mem_size <= 0:
            raise UserError(f"method.mem_size must be positive, got {config.mem_size}")
        self.memory = ReplayMemory(config.mem_size, config.storage, seed)
        self.kept: dict[int, Sample] = {}  # key -> image with its step's labels, for the records in memory
        self._step_records: list[Record] = []
        self._step_kept: dict[int, Sample] = {}  # the current step's samples, until the memory has chosen

    def _step_samples(self, step: StepData) -> Iterator[Sample]:
        """The step's samples (labels of C_t), noting each image's record and sample for the memory."""
        self._step_records, self._step_kept = [], {}
        key = max(self.kept, default=-1) + 1
        for sample in step.samples():
            self._step_records.append((key, step.step, sample.height, sample.width))
            self._step_kept[key] = Sample(sample.image_id, sample.image, sample.sem_seg.astype(np.uint16))  # fits
            key += 1
            yield sample

    def _memory_samples(self) -> Iterator[Sample]:
        return (self.kept[key] for key, _, _, _ in self.memory.records())

    def training_samples(self, step: StepData) -> Iterator[Sample]:
        return chain(self._step_samples(step), self._memory_samples())

    def after_step(self, step: StepData, data: TrainingSet) -> None:
        self.memory.add(step.step, self._step_records)
        offered = {**self.kept, **self._step_kept}
        self.kept = {key: offered[key] for key, _, _, _ in self.memory.records()}  # drop what the memory evicted
        self._step_kept = {}

    def state_dict(self) -> dict:
        kept = {key: (s.image_id, s.image, s.sem_seg) for key, s in self.kept.items()}
        return {**super().state_dict(), "memory": self.memory.state_dict(), "kept": kept}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.memory.load_state_dict(state["memory"])
        self.kept = {int(key): Sample(image_id, image, sem_seg)
                     for key, (image_id, image, sem_seg) in state["kept"].items()}

    def memory_bytes(self) -> int:
        return super().memory_bytes() + sum(s.image.nbytes + s.sem_seg.nbytes for s in self.kept.values())
