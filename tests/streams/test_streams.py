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


# every shipped stream but those over the user's own folder (stream=folder: its vocabulary is the user's classes.yaml)
SHIPPED_VOCABULARY = [n for n in group_options("stream") if n not in ("folder", "folder_panoptic")]


@pytest.mark.parametrize("name", SHIPPED_VOCABULARY)
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


def test_partition_mode_puts_every_training_image_in_exactly_one_step(demo_root, tmp_path):
    from streams.builder import classes_per_image, open_dataset

    train = open_dataset("demo", "train", demo_root)
    per_image = [set(classes) for classes in classes_per_image(train, tmp_path)]  # cached for the builds below
    overlap = build_stream(load_config(["stream=demo_4steps"]).stream, train, tmp_path)
    stream = build_stream(load_config(["stream=demo_4steps", "stream.mode=partition"]).stream, train, tmp_path)
    steps_of = {}
    for t, (classes, indices) in enumerate(zip(stream.step_classes, stream.train_indices)):
        for index in indices:
            assert per_image[index] & set(classes)  # an image trains only in a step whose classes it holds
            steps_of.setdefault(index, []).append(t)
    labelled = [i for i, present in enumerate(per_image) if present]
    assert sorted(steps_of) == labelled and all(len(steps) == 1 for steps in steps_of.values())
    assert sum(map(len, stream.train_indices)) == len(labelled) < sum(map(len, overlap.train_indices))
    # drawn from the stream seed: the same seed draws the same partition, another seed another one
    again = build_stream(load_config(["stream=demo_4steps", "stream.mode=partition"]).stream, train, tmp_path)
    other = build_stream(load_config(["stream=demo_4steps", "stream.mode=partition", "stream.order_seed=1"]).stream,
                         train, tmp_path)
    assert again.train_indices == stream.train_indices and again.hash == stream.hash
    assert other.hash != stream.hash


def test_train_lists_round_trip_and_mib_npy_lists(demo_root, tmp_path):
    import numpy as np

    from benchmark.__main__ import main
    from benchmark.errors import UserError
    from streams.builder import cache_dir_for, open_dataset
    from streams.train_lists import read_train_lists

    train = open_dataset("demo", "train", demo_root)
    cache = cache_dir_for(demo_root)  # where `streams lists` cached the per-image class lists
    partition = ["stream=demo_4steps", "stream.mode=partition", f"data.root={demo_root}"]
    assert main(["streams", "lists", "demo_4steps", *partition[1:], "--out", str(tmp_path / "lists")]) == 0
    written = build_stream(load_config(partition).stream, train, cache)
    read_back = build_stream(load_config([*partition, f"stream.train_lists={tmp_path / 'lists'}"]).stream, train, cache)
    assert read_back.train_indices == written.train_indices and read_back.hash == written.hash
    # MiB's split files: train-<t>.npy of indices into the training split, in any order
    mib = tmp_path / "mib"
    mib.mkdir()
    for t, indices in enumerate(written.train_indices):
        np.save(mib / f"train-{t}.npy", np.array(indices[::-1]))
    assert read_train_lists(mib, 4, train) == written.train_indices
    np.save(mib / "train-3.npy", np.array([len(train)]))
    with pytest.raises(UserError, match=rf"train-3\.npy: index {len(train)} outside the {len(train)} training images"):
        read_train_lists(mib, 4, train)
    (mib / "train-1.npy").unlink()
    with pytest.raises(UserError, match="expected exactly one train-<t>.txt or train-<t>.npy for each step t = 0..3"):
        read_train_lists(mib, 4, train)
    (tmp_path / "lists" / "train-2.txt").write_text("no_such_image\n")
    with pytest.raises(UserError, match=r"train-2\.txt: image 'no_such_image' is not in the training split"):
        read_train_lists(tmp_path / "lists", 4, train)


def test_building_a_stream_writes_nothing_under_the_data_root(demo_root, tmp_path, monkeypatch):
    """Shared dataset folders are often read-only: the per-image class lists go to the cache folder instead."""
    from streams.builder import build_stream, cache_dir_for, open_dataset
    from benchmark.config import load_config

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    before = sorted(p for p in demo_root.rglob("*"))
    cfg = load_config([f"data.root={demo_root}"])
    train = open_dataset(cfg.stream.dataset, "train", demo_root, cfg.data.demo_seed, cfg.data.on_error)
    build_stream(cfg.stream, train, cache_dir_for(demo_root))
    assert sorted(p for p in demo_root.rglob("*")) == before
    assert list(cache_dir_for(demo_root).glob("classes_*.json"))  # cached, under XDG_CACHE_HOME
    assert cache_dir_for(demo_root).is_relative_to(tmp_path / "cache")
