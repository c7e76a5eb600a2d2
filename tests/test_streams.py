import json

import pytest

from benchmark.config import group_options, load_config
from benchmark.data.datasets import DATASETS
from benchmark.data.demo import demo_vocabulary
from benchmark.data.types import Vocabulary
from cited_splits import (ECLIPSE_ADE_ORDERS, MIB_TASKS_ADE, MIB_TASKS_VOC, PLOP_TASKS_ADE_100_5,
                          PLOP_TASKS_VOC_10_1)
from streams.builder import FROZEN_DIR, build_stream, freeze, load_order_preset, order_presets, split_classes, step_sizes


def vocabulary_of(cfg) -> Vocabulary:
    return demo_vocabulary() if cfg.dataset.startswith("demo") else Vocabulary.load(DATASETS.get(cfg.dataset).vocabulary)


@pytest.mark.parametrize("name", group_options("stream"))
def test_every_stream_config_is_frozen_and_reproducible(name):
    cfg = load_config([f"stream={name}"]).stream
    vocabulary = vocabulary_of(cfg)
    frozen = json.loads((FROZEN_DIR / f"{name}.json").read_text())
    # the committed split is what the code draws today (guards against library changes in seeded permutations)
    assert freeze(cfg, vocabulary) == frozen
    classes = [c for step in frozen["step_classes"] for c in step]
    assert sorted(classes) == list(range(len(vocabulary)))
    assert [len(s) for s in frozen["step_classes"]] == step_sizes(cfg, len(vocabulary))


def test_classic_ade150_splits_use_natural_order():
    cfg = load_config(["stream=ade150_100-10"]).stream
    _, step_classes = split_classes(cfg, vocabulary_of(cfg), [])
    assert step_classes[0] == list(range(100)) and step_classes[1] == list(range(100, 110))


def split_of(overrides: list[str]) -> list[list[int]]:
    cfg = load_config(overrides).stream
    return split_classes(cfg, vocabulary_of(cfg), [])[1]


def from_source(task: dict[int, list[int]]) -> list[list[int]]:
    """A MiB / PLOP task dict in our ADE-150 ids: their class c is our c - 1; their 0 (background) is no class."""
    return [sorted(c - 1 for c in task[t] if c != 0) for t in sorted(task)]


MIB_SPLIT_STREAMS = {"100-50": "ade150_100-50", "100-10": "ade150_100-10", "50": "ade150_50-50"}


@pytest.mark.parametrize("order", ["", "b", "c"])
@pytest.mark.parametrize("split", list(MIB_SPLIT_STREAMS))
def test_ade150_splits_equal_mib_tasks_py(split, order):
    """MiB's 100-50 / 100-10 / 50-50 in its orders a (natural), b and c (stream.order=mib_b | mib_c)."""
    overrides = [f"stream={MIB_SPLIT_STREAMS[split]}"] + ([f"stream.order=mib_{order}"] if order else [])
    for panoptic in (False, True):
        name = MIB_SPLIT_STREAMS[split].replace("ade150_", "ade150_panoptic_") if panoptic else MIB_SPLIT_STREAMS[split]
        assert split_of([f"stream={name}", *overrides[1:]]) == from_source(MIB_TASKS_ADE[split + order])


def test_ade150_100_5_equals_plop_tasks_py():
    for name in ("ade150_100-5", "ade150_panoptic_100-5"):
        assert split_of([f"stream={name}"]) == from_source(PLOP_TASKS_ADE_100_5)


@pytest.mark.parametrize("name", sorted(ECLIPSE_ADE_ORDERS))
def test_eclipse_orders_equal_its_configs_and_slice_as_eclipse_does(name):
    cited = ECLIPSE_ADE_ORDERS[name]
    vocabulary = Vocabulary.load("ade20k_150")
    assert load_order_preset(f"eclipse_{name}", vocabulary) == [c - 1 for c in cited]
    # ECLIPSE's semantic_wrapper: step t learns class_order[acc : acc + inc]
    for stream, sizes in (("ade150_panoptic_50-10", [50] + [10] * 10), ("ade150_50-20", [50] + [20] * 5),
                          ("ade150_100-5", [100] + [5] * 10)):
        bounds = [sum(sizes[:t]) for t in range(len(sizes) + 1)]
        expected = [sorted(c - 1 for c in cited[bounds[t]:bounds[t + 1]]) for t in range(len(sizes))]
        assert split_of([f"stream={stream}", f"stream.order=eclipse_{name}"]) == expected


@pytest.mark.parametrize("stream, cited", [("voc21_15-5", MIB_TASKS_VOC["15-5"]), ("voc21_15-1", MIB_TASKS_VOC["15-5s"]),
                                           ("voc21_19-1", MIB_TASKS_VOC["19-1"]), ("voc21_10-1", PLOP_TASKS_VOC_10_1)])
def test_voc_splits_equal_mib_and_plop_tasks_py(stream, cited):
    """VOC keeps the source's ids (MiB's class 0, background, is class 0 here and is learned in step 0)."""
    assert split_of([f"stream={stream}"]) == [sorted(cited[t]) for t in sorted(cited)]


def test_order_presets_refuse_another_vocabulary():
    from benchmark.errors import UserError

    assert {"mib_b", "mib_c", *(f"eclipse_{n}" for n in "bcdefghij")} <= set(order_presets())
    with pytest.raises(UserError, match="class order of ade20k_150, not of demo_40"):
        load_order_preset("eclipse_b", demo_vocabulary())
    with pytest.raises(UserError, match="stream.order=mib_z is not one of"):
        load_config(["stream=ade150_100-10", "stream.order=mib_z"])


def test_another_order_seed_draws_another_split_and_hash(demo_root):
    from streams.builder import open_dataset

    train = open_dataset("demo", "train", demo_root)
    a = build_stream(load_config(["stream=demo_4steps"]).stream, train)
    b = build_stream(load_config(["stream=demo_4steps", "stream.order_seed=1"]).stream, train)
    assert a.step_classes != b.step_classes and a.hash != b.hash
    again = build_stream(load_config(["stream=demo_4steps"]).stream, train)
    assert again.hash == a.hash and again.train_indices == a.train_indices
    # overlap mode: each step holds exactly the images with a pixel of its classes
    per_image = [set(train.classes_present(i).tolist()) for i in range(len(train))]
    for classes, indices in zip(a.step_classes, a.train_indices):
        assert indices == [i for i, present in enumerate(per_image) if present & set(classes)]
