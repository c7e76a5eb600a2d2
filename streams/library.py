"""The Python face of the streams: `streams.load(name, ...)` for any training loop.

    import streams
    stream = streams.load("demo_4steps", protocol="mib")         # the stream `covseg run stream=... protocol=...` runs
    for step in stream.steps:                                     # step.classes: C_t, step.seen: S_t
        loader = DataLoader(step.train_dataset(), batch_size=1)   # {"image", "sem_seg", "image_id"} per item
        ...

The configuration is composed as the CLI composes it (benchmark/config.py), so the stream, its class order,
its per-step image lists and its hash equal the CLI's; a training item is the sample a method receives in
`learn` (benchmark/method.py `StepData`, labelled by the protocol's training-label policy of
benchmark/protocol.py), converted to torch tensors.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from omegaconf import DictConfig

from benchmark import distributed
from benchmark.config import data_root, load_config
from benchmark.data.demo import DEMO_DATASETS, claim_demo_secret
from benchmark.data.types import BACKGROUND_LABEL, IGNORE_LABEL, Sample, SegmentationDataset, Vocabulary
from benchmark.method import StepData
from benchmark.protocol import Protocol
import streams.builder as builder

Transform = Callable[[dict], Any]

__all__ = ["load", "Stream", "Step", "Resize", "IGNORE_LABEL", "BACKGROUND_LABEL"]


def _override_value(value: Any) -> str:
    """A Python value in Hydra's override syntax (strings quoted, lists bracketed, None as null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def run_overrides(name: str, data_root: str | Path | None = None, protocol: str = "covseg",
                  **overrides: Any) -> list[str]:
    """The `covseg run` overrides that `load(name, data_root, protocol, **overrides)` stands for."""
    items = [f"stream={name}", f"protocol={protocol}"]
    if data_root is not None:
        items.append(f"data.root={_override_value(str(data_root))}")
    return items + [f"stream.{key}={_override_value(value)}" for key, value in overrides.items()]


def load(name: str, data_root: str | Path | None = None, protocol: str = "covseg", **overrides: Any) -> "Stream":
    """The stream `covseg run stream=NAME protocol=PROTOCOL data.root=DATA_ROOT stream.KEY=VALUE ...` runs: the
    same class order, per-step image lists, hash and protocol. `overrides` are the keys of `stream.*`
    (order_seed=3, mode="disjoint", step_sizes=[20, 10, 10], train_lists="DIR", ...); an unknown key or value
    is refused in one line (benchmark.errors.UserError). `data_root`: as `data.root` (None: the CLI's default)."""
    return Stream.open(load_config(run_overrides(name, data_root, protocol, **overrides)))


def open_stream_data(cfg: DictConfig, progress: Any = None
                     ) -> tuple[SegmentationDataset, SegmentationDataset, builder.Stream]:
    """The configured stream's training and validation splits and the stream drawn over them."""
    root = data_root(cfg)
    with distributed.main_first():  # rank 0 fills the on-disk caches (demo data, stream files) first
        if cfg.data.demo_secret is not None and cfg.stream.dataset in DEMO_DATASETS:
            claim_demo_secret(root, cfg.data.demo_seed, cfg.data.demo_secret)
        splits = [builder.open_dataset(cfg.stream.dataset, split, root, cfg.data.demo_seed, cfg.data.on_error,
                                       cfg.data.demo_scale) for split in ("train", "val")]
        stream = builder.build_stream(cfg.stream, splits[0], builder.cache_dir_for(root), progress)
    return splits[0], splits[1], stream


class Stream:
    """A stream ready for any loop: `steps[t]` (C_t, S_t, training data), `val_dataset()`, the protocol, and
    the definition the harness runs (`definition`, with the `hash` that every run's manifest records)."""

    def __init__(self, config: DictConfig, definition: builder.Stream, train: SegmentationDataset,
                 val: SegmentationDataset) -> None:
        self.config = config  # the composed run configuration (its `stream`, `protocol`, `data` and `eval` keys)
        self.definition = definition
        self.protocol = Protocol.of(config.protocol, train.vocabulary)
        self._train, self._val = train, val
        self.steps = [Step(self, t) for t in range(definition.num_steps)]

    @classmethod
    def open(cls, config: DictConfig) -> "Stream":
        """The stream of a composed run configuration (`benchmark.config.load_config`)."""
        train, val, definition = open_stream_data(config)
        return cls(config, definition, train, val)

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def hash(self) -> str:
        return self.definition.hash

    @property
    def train_split(self) -> SegmentationDataset:
        """The dataset's whole training split (the reader; steps hold their images of it)."""
        return self._train

    @property
    def val_split(self) -> SegmentationDataset:
        """The dataset's validation split (the reader `val_dataset` and the evaluator read)."""
        return self._val

    @property
    def vocabulary(self) -> Vocabulary:
        """Every class of the stream (ids 0..K-1, names and synonyms)."""
        return self._train.vocabulary

    @property
    def class_names(self) -> list[str]:
        return self.vocabulary.names

    @property
    def num_classes(self) -> int:
        return len(self.vocabulary)

    @property
    def num_steps(self) -> int:
        return self.definition.num_steps

    @property
    def panoptic(self) -> bool:
        return self.definition.panoptic

    def __len__(self) -> int:
        return self.num_steps

    def __iter__(self):
        return iter(self.steps)

    def describe(self) -> dict:
        """What `covseg streams show NAME` prints, with the protocol."""
        return {**self.definition.describe(), "protocol": self.protocol.describe(self.config.stream)}

    def val_dataset(self, transform: Transform | None = None) -> "SampleDataset":
        """Every validation image with its full labels (`transform(item)` applied to each item if given)."""
        return SampleDataset(len(self._val), self._val.load, transform)

    def __repr__(self) -> str:
        return (f"Stream({self.name!r}, hash={self.hash}, steps={self.num_steps}, classes={self.num_classes}, "
                f"protocol={self.protocol.name!r})")


class Step:
    """Step t of a stream: `classes` (C_t), `seen` (S_t = C_0 ∪ ... ∪ C_t), its training images."""

    def __init__(self, stream: Stream, index: int) -> None:
        self.stream = stream
        self.index = index
        self.classes = list(stream.definition.step_classes[index])  # C_t
        self.seen = stream.definition.seen_classes(index)  # S_t
        self.image_ids = list(stream.definition.train_image_ids[index])

    def step_data(self, progress: Any = None) -> StepData:
        """What a method receives in `learn` at this step (the runner's own constructor)."""
        stream = self.stream
        return StepData.of_stream(self.index, self.classes, self.seen, stream.vocabulary, stream.train_split,
                                  stream.definition.train_indices[self.index], progress=progress,
                                  relabel=stream.protocol.training_labels)

    def train_dataset(self, transform: Transform | None = None) -> "SampleDataset":
        """The step's training images labelled as a method sees them in `learn`: pixels of C_t keep their class,
        the others are IGNORE_LABEL or background as the protocol says (`transform(item)` applied if given)."""
        data = self.step_data()
        return SampleDataset(len(data), data.sample_at, transform)

    def __repr__(self) -> str:
        return f"Step({self.index}, classes={self.classes}, images={len(self.image_ids)})"


def sample_item(sample: Sample) -> dict:
    """A sample as torch tensors: image (H, W, 3) uint8, sem_seg (H, W) int64, image_id; on panoptic samples
    also pan_seg (H, W) int64 segment ids (0: none) and segments (dicts of id, category_id, iscrowd, isthing,
    area)."""
    item = {"image": torch.from_numpy(np.ascontiguousarray(sample.image, dtype=np.uint8)),
            "sem_seg": torch.from_numpy(np.asarray(sample.sem_seg, dtype=np.int64)), "image_id": sample.image_id}
    if sample.pan_seg is not None:
        item["pan_seg"] = torch.from_numpy(np.asarray(sample.pan_seg, dtype=np.int64))
        item["segments"] = [{"id": s.id, "category_id": s.category_id, "iscrowd": s.iscrowd, "isthing": s.isthing,
                             "area": s.area} for s in sample.segments]
    return item


class SampleDataset(torch.utils.data.Dataset):
    """A torch Dataset over samples (`load(position) -> Sample`): items are `sample_item` dicts."""

    def __init__(self, count: int, load: Callable[[int], Sample | None], transform: Transform | None = None) -> None:
        self._count, self._load, self.transform = count, load, transform

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, position: int) -> Any:
        if not 0 <= position < self._count:
            raise IndexError(f"position {position} outside the {self._count} images")
        sample = self._load(position)
        if sample is None:  # data.on_error=skip left it out
            raise RuntimeError(f"image at position {position} is unreadable")
        item = sample_item(sample)
        return item if self.transform is None else self.transform(item)


class Resize:
    """A transform to `size` x `size`: the image bilinear, the label maps nearest (so batches stack)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, item: dict) -> dict:
        import torch.nn.functional as F

        image = item["image"].permute(2, 0, 1)[None].float()  # (1, 3, H, W)
        resized = F.interpolate(image, size=(self.size, self.size), mode="bilinear", align_corners=False)
        out = {**item, "image": resized[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)}
        for key in ("sem_seg", "pan_seg"):
            if key in item:
                out[key] = F.interpolate(item[key][None, None].double(), size=(self.size, self.size),
                                         mode="nearest")[0, 0].long()
        return out
