"""Every registered model kind builds a `Segmenter` (benchmark/models/base.py) that methods can use alike; an
unknown kind is one line with the near matches; a builder returning an incomplete segmenter is named."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from benchmark.config import load_config
from benchmark.data.types import ImageInput
from benchmark.errors import UserError
from benchmark.models import MODEL_KINDS, build_segmenter, register_model_kind
from benchmark.models.base import SEGMENTER_MEMBERS, Segmenter, missing_members

REPO = Path(__file__).resolve().parents[2]


def tiny_random(tmp_path: Path, demo_root: Path):
    return load_config([f"data.root={demo_root}", "model=tiny_random", f"model.cache_dir={tmp_path / 'cache'}"]).model


def cached_export(tmp_path: Path, demo_root: Path):
    """Predictions of tiny_random on two demo validation images, exported here by export-predictions' code."""
    from benchmark.exporters.segmenter import export_predictions
    from streams.builder import open_dataset

    val = open_dataset("demo", "val", demo_root, 0)
    segmenter = build_segmenter(tiny_random(tmp_path, demo_root))
    export_predictions(segmenter, [(val, range(2))], tmp_path / "exported", val.vocabulary, producer="test")
    return OmegaConf.create({"name": "cached", "kind": "cached", "predictions_dir": str(tmp_path / "exported"),
                             "batch_size": 2, "cache_dir": "off"})


KIND_CONFIGS = {"open_clip": tiny_random, "cached": cached_export}  # a new kind adds the config its test builds


def test_every_registered_kind_has_a_conformance_case():
    assert set(KIND_CONFIGS) == set(MODEL_KINDS.names())


@pytest.mark.parametrize("kind", sorted(KIND_CONFIGS))
def test_each_kind_builds_a_segmenter_that_methods_can_use_alike(kind, tmp_path, demo_root):
    from streams.builder import open_dataset

    config = KIND_CONFIGS[kind](tmp_path, demo_root)
    assert config.kind == kind
    segmenter = build_segmenter(config, seed=0)
    assert isinstance(segmenter, Segmenter) and Segmenter in type(segmenter).__mro__  # implemented explicitly
    assert missing_members(segmenter) == []
    val = open_dataset("demo", "val", demo_root, 0)
    vocab = val.vocabulary
    images = [ImageInput.of(val.load(i), panoptic=False) for i in range(2)]
    features = segmenter.cached_image_features(images)
    assert segmenter.cached_image_features(images)[0] is features[0]  # from the segmenter's cache
    for image, feats in zip(images, features):
        assert feats.proposals.shape == (image.height, image.width)
        probs, void = segmenter.base_probs(feats, vocab), segmenter.void_probs(feats, vocab)
        assert probs.shape == (len(feats.embeddings), len(vocab)) and void.shape == (len(feats.embeddings),)
        assert torch.allclose(probs.sum(1) + void, torch.ones(len(probs)), atol=1e-5)
    text = segmenter.text_embeddings(vocab)
    assert text.shape == (len(vocab), segmenter.embed_dim)
    assert segmenter.classify(features[0].embeddings, vocab).shape == (len(features[0].embeddings), len(vocab))
    assert isinstance(segmenter.digest, str) and segmenter.digest


def test_the_exported_kind_reproduces_the_model_it_was_exported_from(tmp_path, demo_root):
    """model=cached over tiny_random's export gives tiny_random's own zero-shot classes on every proposal."""
    from streams.builder import open_dataset

    cached = build_segmenter(cached_export(tmp_path, demo_root))
    original = build_segmenter(tiny_random(tmp_path, demo_root))
    val = open_dataset("demo", "val", demo_root, 0)
    images = [ImageInput.of(val.load(i), panoptic=False) for i in range(2)]
    for ours, theirs in zip(cached.image_features(images), original.image_features(images)):
        assert np.array_equal(ours.proposals, theirs.proposals)
        assert torch.equal(cached.base_probs(ours, val.vocabulary).argmax(1),
                           original.base_probs(theirs, val.vocabulary).argmax(1))


def test_an_unknown_kind_is_one_line_with_the_near_matches(demo_root):
    with pytest.raises(UserError, match=r"unknown model.kind 'opn_clip' \(did you mean: open_clip\?\); "
                                        r"available: cached, open_clip") as error:
        load_config([f"data.root={demo_root}", "model.kind=opn_clip"])
    assert "\n" not in str(error.value)
    result = subprocess.run([sys.executable, "-m", "benchmark", "run", "method=zeroshot", "model.kind=cachd",
                             "--cfg", "job"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "did you mean: cached?" in result.stderr


def test_a_registered_kind_is_built_and_checked(monkeypatch, demo_root):
    """A kind is one registered builder; its result must carry every Segmenter member."""
    monkeypatch.setattr(MODEL_KINDS, "_entries", dict(MODEL_KINDS._entries))

    class Incomplete:
        def __init__(self, config, *, seed, device, cache_dir):
            self.config = config

    register_model_kind("incomplete")(Incomplete)
    config = OmegaConf.create({"kind": "incomplete", "cache_dir": "off"})
    with pytest.raises(TypeError, match="model.kind=incomplete: Incomplete lacks the Segmenter members base_probs"):
        build_segmenter(config)
    with pytest.raises(ValueError, match="already registered"):
        register_model_kind("incomplete")(Incomplete)
    assert load_config([f"data.root={demo_root}", "model.kind=incomplete"]).model.kind == "incomplete"


def test_the_protocol_lists_what_methods_ask_of_any_segmenter():
    assert missing_members(object()) == list(SEGMENTER_MEMBERS)
    assert {"config", "device", "digest", "embed_dim", "logit_scale", "cache_dir", "image_features",
            "cached_image_features", "base_probs", "void_probs", "text_embeddings", "classify",
            "region_embeddings"} <= set(SEGMENTER_MEMBERS)
