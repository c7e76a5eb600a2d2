"""Bounded memory at scale: the scaled demo, compact per-image state, byte-bounded caches, per-class text cache,
backbone passes counted and kept to one per image."""
import numpy as np
import pytest
import torch

from benchmark.data.types import ImageInput
from benchmark.errors import UserError
from benchmark.models.feature_cache import MemoryCache
from benchmark.models.features import ImageFeatures, byte_size

SMALL = ("stream.num_steps=2", "eval.max_images=16", "stream.max_train_images_per_step=12")


def test_demo_scale_extends_the_default_dataset(tmp_path, monkeypatch):
    from benchmark.data import demo

    monkeypatch.setattr(demo, "TRAIN_PER_SCALE", 3)
    monkeypatch.setattr(demo, "VAL_PER_SCALE", 2)
    small, large = demo.ensure_demo_dataset(tmp_path, 0, scale=1), demo.ensure_demo_dataset(tmp_path, 0, scale=2)
    assert small != large
    train = demo.demo_dataset(tmp_path, "training", panoptic=False, scale=2)
    val = demo.demo_dataset(tmp_path, "validation", panoptic=False, scale=2)
    assert len(train) == 6 and len(val) == 4
    for i in range(3):  # the first images of every scale are the default dataset's
        a, b = demo.demo_dataset(tmp_path, "training", panoptic=False).load(i), train.load(i)
        assert a.image_id == b.image_id and np.array_equal(a.image, b.image) and np.array_equal(a.sem_seg, b.sem_seg)
    with pytest.raises(UserError, match="demo_scale=0"):
        demo.ensure_demo_dataset(tmp_path, 0, scale=0)


def test_image_features_are_stored_compactly_and_decoded_exactly():
    rng = np.random.default_rng(0)
    proposals = rng.integers(-1, 200, size=(300, 400)).astype(np.int32)
    embeddings = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(200, 64)).astype(np.float32)), dim=1)
    half = ImageFeatures(proposals, embeddings, storage_dtype=torch.float16)
    assert half.proposal_codes.dtype == np.uint8 and np.array_equal(half.proposals, proposals)
    assert half.embeddings.dtype == torch.float32 and torch.allclose(half.embeddings, embeddings, atol=1e-3)
    assert half.nbytes == 300 * 400 + 200 * 64 * 2
    wide = ImageFeatures(np.full((4, 4), 300, np.int32), embeddings[:1])  # 301 codes need uint16
    assert wide.proposal_codes.dtype == np.uint16 and torch.equal(wide.embeddings, embeddings[:1])
    back = ImageFeatures.from_arrays(half.to_arrays())
    assert np.array_equal(back.proposals, proposals) and torch.equal(back.stored_embeddings, half.stored_embeddings)


def test_memory_cache_evicts_least_recently_used_beyond_its_bytes():
    cache = MemoryCache(100, byte_size)
    for key in "abc":
        cache.put(key, np.zeros(40, np.uint8))  # c evicts a
    assert "a" not in cache and cache.bytes == 80 and cache.evictions == 1
    assert cache.get("b") is not None  # b is now the most recent: d evicts c
    cache.put("d", np.zeros(40, np.uint8))
    assert "c" not in cache and "b" in cache and cache.bytes == 80
    cache.put("huge", np.zeros(101, np.uint8))  # larger than the budget: not kept, nothing evicted
    assert "huge" not in cache and len(cache) == 2 and cache.peak_bytes == 80
    assert cache.report()["hits"] == 1


def _segmenter(**overrides):
    from omegaconf import OmegaConf

    from benchmark.config import ModelConfig
    from benchmark.models.segmenter import OpenVocabSegmenter

    config = OmegaConf.merge(OmegaConf.structured(ModelConfig), {"name": "tiny_random", **overrides})
    return OpenVocabSegmenter(config, seed=0)


def test_text_embeddings_are_cached_per_class(demo_root):
    from benchmark.data.demo import demo_vocabulary

    segmenter, fresh = _segmenter(), _segmenter()
    vocab = demo_vocabulary()
    first = segmenter.text_embeddings(vocab.subset([0, 1, 2]))
    prompts = segmenter.text_prompts
    grown = segmenter.text_embeddings(vocab.subset([0, 1, 2, 3]))
    assert segmenter.text_prompts == prompts * 4 // 3  # only class 3 encoded again
    assert torch.equal(grown[:3], first) and torch.equal(grown, fresh.text_embeddings(vocab.subset([0, 1, 2, 3])))


def test_validation_and_training_caches_are_apart_and_bounded(demo_root):
    from benchmark.data.demo import demo_dataset

    segmenter = _segmenter(cache_memory_mb=0.2)  # ~200 kB each: a few images
    data = demo_dataset(demo_root, "training", panoptic=False)
    samples = [data.load(i) for i in range(12)]
    inputs = [ImageInput.of(s, False) for s in samples[:2]]
    segmenter.cached_image_features(inputs)
    segmenter.cached_dense_features(samples)  # a stream of training images ...
    validation, training = segmenter.memory_caches["validation"], segmenter.memory_caches["training"]
    assert len(validation) == 2 and training.evictions > 0  # ... never evicts validation entries
    assert max(validation.peak_bytes, training.peak_bytes) <= 0.2 * 2**20
    passes = segmenter.backbone_images
    segmenter.cached_image_features(inputs)
    assert segmenter.backbone_images == passes and validation.hits == 2


def test_learning_baseline_runs_the_backbone_once_per_image(run_demo):
    """finetune: a validation image's dense features (for the head) and its proposals' embeddings come from
    one backbone pass; training images returning in a later step are not run again."""
    from benchmark.models.segmenter import OpenVocabSegmenter

    counts = []
    original = OpenVocabSegmenter.tokens_before_last_block
    patched = lambda self, images: counts.append(len(images)) or original(self, images)  # noqa: E731
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(OpenVocabSegmenter, "tokens_before_last_block", patched)
        run_dir, _ = run_demo("method=finetune", "model.cache_dir=off", "method.epochs=1", *SMALL)
    import json

    passes = json.loads((run_dir / "manifest.json").read_text())["passes"]
    assert passes["backbone_images"] == sum(counts) <= passes["distinct_images"]
    assert passes["distinct_images"] == 16 + passes["distinct_training_images"]


def _clustered(rng, count, dim, classes=8):
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    labels = rng.integers(0, classes, count)
    vectors = centres[labels] + 0.8 * rng.normal(size=(count, dim)).astype(np.float32)
    return torch.nn.functional.normalize(torch.from_numpy(vectors), dim=1), labels


def test_auto_index_is_exact_while_small_then_compressed_and_retrained():
    from methods.knnclip.database import RETRAIN_GROWTH, RetrievalDatabase, auto_index_spec

    rng = np.random.default_rng(0)
    vectors, labels = _clustered(rng, 3300, 32)
    auto, flat = RetrievalDatabase(32, "auto", exact_max=700), RetrievalDatabase(32, "Flat")
    auto.add(vectors[:700], labels[:700])
    flat.add(vectors[:700], labels[:700])
    for a, b in zip(auto.search(vectors[:50], 8), flat.search(vectors[:50], 8)):
        assert torch.equal(a, b)  # exact up to exact_max
    auto.add(vectors[700:800], labels[700:800])  # past exact_max: trained on all 800
    assert auto.trained_entries == 800 and auto.index_reports[0]["index"] == auto_index_spec(32, 800) == "IVF16,SQ8"
    assert auto.index_reports[0]["majority_agreement"] >= 0.9
    auto.add(vectors[800:3199], labels[800:3199])  # extended, not retrained, below RETRAIN_GROWTH x 800
    assert len(auto.index_reports) == 1 and len(auto) == 3199
    auto.add(vectors[3199:], labels[3199:])
    assert auto.trained_entries == 3300 >= RETRAIN_GROWTH * 800 and len(auto.index_reports) == 2
    assert auto.index_reports[1]["index"] == "IVF64,SQ8"
    assert auto.memory_bytes() < flat.memory_bytes() * 3300 / 700  # codes + float16 copy < float32 vectors
    clone = RetrievalDatabase(32, "auto", exact_max=700)
    clone.load_state_dict(auto.state_dict())
    for a, b in zip(clone.search(vectors[:50], 8), auto.search(vectors[:50], 8)):
        assert torch.equal(a, b)


def test_torch_backend_searches_exactly_like_faiss_flat():
    """The GPU path (torch top-k on the device), run on CPU through the same code."""
    from methods.knnclip.database import RetrievalDatabase

    rng = np.random.default_rng(1)
    vectors, labels = _clustered(rng, 700, 24)
    torch_db, flat = RetrievalDatabase(24, "auto", backend="torch"), RetrievalDatabase(24, "Flat")
    for part in (slice(0, 400), slice(400, 700)):  # grows in two additions
        torch_db.add(vectors[part], labels[part])
        flat.add(vectors[part], labels[part])
    sims_t, labels_t = torch_db.search(vectors[:40], 5)
    sims_f, labels_f = flat.search(vectors[:40], 5)
    assert torch.equal(labels_t, labels_f) and torch.allclose(sims_t, sims_f, atol=1e-5)
    assert torch_db.memory_bytes() == 700 * 24 * 4 + 700 * 4
    with pytest.raises(UserError, match="searches exactly"):
        RetrievalDatabase(24, "HNSW32", backend="torch")


def test_every_index_string_in_readme_and_configs_builds_for_512_and_1024_dims():
    import re
    from pathlib import Path

    from methods.knnclip.database import RetrievalDatabase

    from benchmark.config import CONFIG_DIR

    root = Path(__file__).resolve().parents[2]
    text = (root / "README.md").read_text() + (CONFIG_DIR / "method" / "knnclip.yaml").read_text()
    specs = set(re.findall(r"\b(Flat|SQfp16|SQ8|HNSW\d+|IVF\d+,[A-Za-z0-9]+)\b", text))
    assert {"Flat", "SQfp16", "HNSW32", "IVF1024,PQ128x4fs"} <= specs
    rng = np.random.default_rng(2)
    for dim in (512, 1024):
        vectors, labels = _clustered(rng, 1100, dim)
        for spec in sorted(specs):
            database = RetrievalDatabase(dim, spec, train_size=1100)
            database.add(vectors, labels)
            assert database.index.ntotal == 1100, spec
            assert (database.search(vectors[:3], 4)[1] >= 0).all(), spec


def test_checkpoint_writes_faiss_indexes_to_side_files_and_restores_them(tmp_path):
    from benchmark.run.checkpoint import load_checkpoint, save_checkpoint
    from methods.knnclip.database import RetrievalDatabase

    rng = np.random.default_rng(3)
    vectors, labels = _clustered(rng, 900, 32)
    database = RetrievalDatabase(32, "auto", exact_max=700)
    database.add(vectors[:800], labels[:800])  # compressed by now
    save_checkpoint(tmp_path, 0, {"database": database.state_dict()})
    assert sorted(p.name for p in tmp_path.glob("*.faiss")) == ["checkpoint-0-0.faiss", "checkpoint-0-1.faiss"]
    database.add(vectors[800:], labels[800:])
    save_checkpoint(tmp_path, 1, {"database": database.state_dict()})
    assert sorted(p.name for p in tmp_path.glob("*.faiss")) == ["checkpoint-1-0.faiss", "checkpoint-1-1.faiss"]
    restored = RetrievalDatabase(32, "auto", exact_max=700)
    restored.load_state_dict(load_checkpoint(tmp_path)["method"]["database"])
    for a, b in zip(restored.search(vectors[:30], 8), database.search(vectors[:30], 8)):
        assert torch.equal(a, b)
    restored.add(vectors[:5], labels[:5])  # the restored copy is its own
    assert len(restored) == len(database) + 5
