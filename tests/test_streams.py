import json

import pytest

from benchmark.config import group_options, load_config
from benchmark.data.datasets import DATASETS
from benchmark.data.demo import demo_vocabulary
from benchmark.data.types import Vocabulary
from streams.builder import FROZEN_DIR, build_stream, freeze, split_classes, step_sizes


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
