"""streams.load: the stream `covseg run` runs (same hash, order, steps and protocol), and training items that are
exactly what a method receives in `learn` (StepData, the protocol's label policy)."""
from pathlib import Path

import numpy as np
import pytest
import torch

import streams
from benchmark.config import load_config
from benchmark.errors import UserError
from benchmark.method import StepData
from benchmark.protocol import Protocol
from streams.builder import build_stream, cache_dir_for, open_dataset

CAP = 6  # training images per step: enough to see every label policy, fast


@pytest.fixture(scope="module")
def loaded(demo_root):
    return {protocol: streams.load("demo_4steps", data_root=demo_root, protocol=protocol,
                                   max_train_images_per_step=CAP)
            for protocol in ("covseg", "mib")}


@pytest.mark.parametrize("protocol", ["covseg", "mib"])
def test_the_stream_is_the_runners(loaded, demo_root, protocol):
    cfg = load_config([f"data.root={demo_root}", f"protocol={protocol}", f"stream.max_train_images_per_step={CAP}"])
    train = open_dataset("demo", "train", demo_root)
    definition = build_stream(cfg.stream, train, cache_dir_for(demo_root))  # what the runner builds
    stream = loaded[protocol]
    assert stream.hash == definition.hash
    assert stream.definition.class_order == definition.class_order
    assert [s.classes for s in stream.steps] == definition.step_classes
    assert [s.seen for s in stream.steps] == [definition.seen_classes(t) for t in range(definition.num_steps)]
    assert [s.image_ids for s in stream.steps] == definition.train_image_ids
    assert stream.protocol == Protocol.of(cfg.protocol, train.vocabulary)
    assert stream.describe()["protocol"]["selection"] == ("disjoint" if protocol == "mib" else "overlap")


def test_protocols_draw_different_streams(loaded):
    assert loaded["covseg"].hash != loaded["mib"].hash  # mib's images are disjoint


@pytest.mark.parametrize("protocol", ["covseg", "mib"])
def test_training_items_are_what_learn_sees(loaded, protocol):
    stream = loaded[protocol]
    background_seen = False
    for step in stream.steps:
        data = StepData.of_stream(step.index, step.classes, step.seen, stream.vocabulary, stream.train_split,
                                  stream.definition.train_indices[step.index],
                                  relabel=stream.protocol.training_labels)
        dataset = step.train_dataset()
        assert isinstance(dataset, torch.utils.data.Dataset) and 0 < len(dataset) == len(data) <= CAP
        for position, sample in enumerate(data.samples()):
            item = dataset[position]
            assert item["image_id"] == sample.image_id
            assert item["image"].dtype == torch.uint8 and item["image"].shape == (*sample.sem_seg.shape, 3)
            assert item["sem_seg"].dtype == torch.int64
            np.testing.assert_array_equal(item["image"].numpy(), sample.image)
            np.testing.assert_array_equal(item["sem_seg"].numpy(), sample.sem_seg)
            labels = set(np.unique(sample.sem_seg)) - {streams.IGNORE_LABEL}
            background_seen |= streams.BACKGROUND_LABEL in labels
            assert labels <= set(step.classes) | {streams.BACKGROUND_LABEL}
    assert background_seen == (protocol == "mib")  # MiB: other classes become background


def test_validation_items_keep_every_label(loaded):
    stream = loaded["covseg"]
    val = stream.val_dataset()
    assert len(val) == len(stream.val_split)
    sample = stream.val_split.load(3)
    np.testing.assert_array_equal(val[3]["sem_seg"].numpy(), sample.sem_seg)
    resized = stream.val_dataset(transform=streams.Resize(32))[3]
    assert resized["image"].shape == (32, 32, 3) and resized["sem_seg"].shape == (32, 32)
    assert set(resized["sem_seg"].unique().tolist()) <= set(np.unique(sample.sem_seg).tolist())


def test_panoptic_items_carry_segments(demo_root):
    stream = streams.load("demo_panoptic_4steps", data_root=demo_root, max_train_images_per_step=2)
    item = stream.steps[0].train_dataset()[0]
    assert item["pan_seg"].dtype == torch.int64 and item["segments"]
    assert {s["category_id"] for s in item["segments"]} <= set(stream.steps[0].classes)
    assert set(item["pan_seg"].unique().tolist()) <= {0} | {s["id"] for s in item["segments"]}


def test_overrides_are_stream_keys(demo_root):
    stream = streams.load("demo_4steps", data_root=demo_root, order_seed=3, step_sizes=[20, 10, 10],
                          max_train_images_per_step=2)
    assert [len(s.classes) for s in stream.steps] == [20, 10, 10]
    with pytest.raises(UserError, match="stream.order_sed"):
        streams.load("demo_4steps", data_root=demo_root, order_sed=3)
    with pytest.raises(UserError, match="stream.mode=sideways"):
        streams.load("demo_4steps", data_root=demo_root, mode="sideways")


@pytest.mark.parametrize("panoptic", [False, True])
def test_a_folder_dataset_loads_as_the_cli_builds_it(tmp_path, panoptic):
    """`streams.load("folder", path=DIR, num_steps=2)`: the stream of `covseg run stream=folder stream.path=DIR
    stream.num_steps=2` (tests/data/test_folder_dataset.py draws the folder)."""
    import importlib.util

    from benchmark.config import data_root

    spec = importlib.util.spec_from_file_location("folder_dataset_maker", Path(__file__).parents[1] / "data" /
                                                  "test_folder_dataset.py")
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    folder = maker.make_folder(tmp_path / "mydata", panoptic=panoptic)
    name = "folder_panoptic" if panoptic else "folder"
    stream = streams.load(name, path=folder, num_steps=2)
    cfg = load_config([f"stream={name}", f"stream.path={folder}", "stream.num_steps=2"])
    train = open_dataset(cfg.stream.dataset, "train", data_root(cfg))
    assert stream.hash == build_stream(cfg.stream, train, cache_dir_for(data_root(cfg))).hash
    item = stream.steps[1].train_dataset()[0]
    assert set(item["sem_seg"].unique().tolist()) <= set(stream.steps[1].classes) | {streams.IGNORE_LABEL}
    assert ("segments" in item) == panoptic
    assert len(stream.val_dataset()) == 4
