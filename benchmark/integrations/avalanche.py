"""An Avalanche benchmark over a stream: `make_benchmark(name, data_root=None, protocol="covseg", ...)`.

    from benchmark.integrations.avalanche import make_benchmark
    bm = make_benchmark("demo_4steps", image_size=64)
    for experience in bm.train_stream:          # one experience per step; classes_in_this_experience = C_t
        strategy.train(experience)              # any avalanche strategy, its plugins included
        strategy.eval(bm.test_stream)

Segmentation samples in avalanche's (x, y, task label) shape: x (3, H, W) float32 in [0, 1], y (H, W) int64.
- train experience t: the step's training images labelled as a method sees them in `learn` (streams.load: other
  classes IGNORE_LABEL, or background under the protocol's policy);
- test experience t: the validation images holding a pixel of C_t, pixels of other classes IGNORE_LABEL;
- `targets` (what class-aware avalanche parts read: class-balanced buffers) is the sample's first class of C_t
  present, from the stream's cached per-image class lists; the task label is 0 (class-incremental).
Each experience also carries classes_in_this_experience (C_t), previous_classes, classes_seen_so_far (S_t) and
future_classes, as avalanche's `with_classes_timeline` gives them. Images of different sizes do not stack into a
batch: `image_size=N` resizes them (streams.Resize). The harness's numbers come from
`benchmark.evaluation.StreamEvaluator(bm.covseg_stream)`; avalanche's accuracy metrics are classification's.
Avalanche is imported when a benchmark is made (it is slow to import).
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from benchmark.config import data_root
from benchmark.method import filter_sample
from streams.builder import cache_dir_for, classes_per_image
from streams.library import Resize, SampleDataset, Stream, load


def make_benchmark(name: str, data_root: Any = None, protocol: str = "covseg", image_size: int | None = None,
                   transform: Callable[[dict], dict] | None = None, **overrides: Any):
    """The Avalanche benchmark (a CLScenario with `train_stream` and `test_stream`) of `streams.load(name,
    data_root, protocol, **overrides)`; `transform(item)` (on streams' item dicts) runs after the resize."""
    return benchmark_from_stream(load(name, data_root, protocol, **overrides), image_size, transform)


def benchmark_from_stream(stream: Stream, image_size: int | None = None,
                          transform: Callable[[dict], dict] | None = None):
    """The Avalanche benchmark of a loaded stream (`covseg_stream` on the result is `stream`)."""
    from avalanche.benchmarks.scenarios import CLScenario, DatasetExperience
    from avalanche.benchmarks.scenarios.generic_scenario import EagerCLStream

    prepare = _chain(Resize(image_size) if image_size else None, transform)
    root = cache_dir_for(data_root(stream.config))
    train_classes = classes_per_image(stream.train_split, root)
    val_classes = classes_per_image(stream.val_split, root)
    train, test = [], []
    for step in stream.steps:
        indices = stream.definition.train_indices[step.index]
        train.append(_experience_data(step.train_dataset(prepare), [train_classes[i] for i in indices], step.classes))
        holding = [i for i, classes in enumerate(val_classes) if set(classes) & set(step.classes)]
        test.append(_experience_data(_test_dataset(stream, holding, step.classes, prepare),
                                     [val_classes[i] for i in holding], step.classes))
    streams = []
    for stream_name, datasets in (("train", train), ("test", test)):
        experiences = [DatasetExperience(dataset=data, current_experience=t) for t, data in enumerate(datasets)]
        for experience, step in zip(experiences, stream.steps):
            _set_timeline(experience, stream, step.index)
        streams.append(EagerCLStream(stream_name, experiences))
    scenario = CLScenario(streams)
    scenario.covseg_stream = stream
    return scenario


def _chain(*transforms: Callable[[dict], dict] | None) -> Callable[[dict], tuple]:
    """The item transforms, then avalanche's (x, y) pair: x (3, H, W) float32 in [0, 1], y (H, W) int64."""
    def apply(item: dict) -> tuple[torch.Tensor, torch.Tensor]:
        for transform in transforms:
            if transform is not None:
                item = transform(item)
        return item["image"].permute(2, 0, 1).float() / 255, item["sem_seg"]
    return apply


def _test_dataset(stream: Stream, indices: list[int], classes: list[int], prepare) -> SampleDataset:
    def load_filtered(position: int):
        sample = stream.val_split.load(indices[position])
        return None if sample is None else filter_sample(sample, classes)
    return SampleDataset(len(indices), load_filtered, prepare)


def _experience_data(dataset: SampleDataset, present: list[list[int]], classes: list[int]):
    from avalanche.benchmarks.utils import AvalancheDataset, DataAttribute

    wanted = set(classes)
    targets = [min(set(c) & wanted, default=-1) for c in present]  # the first class of C_t the image holds
    return AvalancheDataset([dataset], data_attributes=[
        DataAttribute(targets, "targets"),
        DataAttribute([0] * len(dataset), "targets_task_labels", use_in_getitem=True)])


def _set_timeline(experience, stream: Stream, t: int) -> None:
    """avalanche's ClassesTimeline attributes of step t."""
    every = {c for step in stream.steps for c in step.classes}
    experience.classes_in_this_experience = list(stream.steps[t].classes)
    experience.previous_classes = sorted(set(stream.steps[t - 1].seen)) if t else []
    experience.classes_seen_so_far = list(stream.steps[t].seen)
    experience.future_classes = sorted(every - set(stream.steps[t].seen))
