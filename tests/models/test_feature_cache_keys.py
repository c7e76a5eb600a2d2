"""Disk feature caches keyed by everything that determines their content, with entries that carry a checksum:
a changed prompt template or model key recomputes, a corrupt or tampered entry is recomputed with one warning."""
import json
import warnings

import numpy as np
import pytest

from benchmark.models.feature_cache import FeatureCache

RUN = ("method=zeroshot", "stream.num_steps=2", "eval.max_images=8", "eval.initial=false")


def test_corrupt_or_foreign_entries_are_recomputed_with_one_warning(tmp_path):
    cache = FeatureCache(tmp_path, "ns")
    cache.put("abcd", x=np.arange(3))
    cache.put("ef01", x=np.arange(3))
    path = tmp_path / "ns" / "ab" / "abcd.npz"
    with np.load(path) as data:
        kept = {name: data[name] for name in data.files}
    np.savez(path, **{**kept, "x": np.arange(3) + 1})  # new values under the old checksum
    (tmp_path / "ns" / "ef" / "ef01.npz").write_bytes(path.read_bytes()[:40])  # truncated
    (tmp_path / "ns" / "12").mkdir()
    np.savez(tmp_path / "ns" / "12" / "1234.npz", x=np.arange(3))  # an entry without a checksum (older code)
    reader = FeatureCache(tmp_path, "ns")
    with pytest.warns(UserWarning, match="checksum mismatch; recomputing") as caught:
        assert reader.get("abcd") is None
        assert reader.get("ef01") is None and reader.get("1234") is None  # truncated, no checksum: no more warnings
    assert len(caught) == 1 and reader.rejected == 3 and reader.hits == 0
    reader.put("abcd", x=np.arange(3))  # the caller's recomputed value replaces the bad entry
    assert np.array_equal(FeatureCache(tmp_path, "ns").get("abcd")["x"], np.arange(3))
    # an entry moved under another key (or namespace) does not match its checksum either
    (tmp_path / "ns" / "ef" / "ef01.npz").write_bytes(path.read_bytes())
    with pytest.warns(UserWarning, match="checksum mismatch"):
        assert FeatureCache(tmp_path, "ns").get("ef01") is None


def _segmenter(cache_dir, **overrides):
    from benchmark.config import load_config
    from benchmark.models import build_segmenter

    cfg = load_config([f"model.cache_dir={cache_dir}", *(f"model.{k}={v}" for k, v in overrides.items())])
    return build_segmenter(cfg.model, seed=0)


def test_model_identity_covers_template_text_and_weights(tmp_path, monkeypatch):
    import open_clip
    import torch

    from benchmark.models import segmenter as segmenter_module

    digest = _segmenter(tmp_path).digest
    assert _segmenter(tmp_path, input_size=112).digest != digest  # a model key
    monkeypatch.setitem(segmenter_module.PROMPT_TEMPLATES, "single", ("a picture of a {}.",))
    edited_template = _segmenter(tmp_path).digest
    monkeypatch.undo()
    create = open_clip.create_model

    def other_weights(*args, **kwargs):  # same arch, config and seed; one weight differs (another download)
        model = create(*args, **kwargs)
        with torch.no_grad():
            model.visual.proj[0, 0] += 1.0
        return model

    monkeypatch.setattr(open_clip, "create_model", other_weights)
    assert len({digest, edited_template, _segmenter(tmp_path).digest}) == 3


def test_oracle_proposals_of_a_training_image_follow_its_step_labels(demo_root, tmp_path):
    """With model.proposals=oracle a training image's proposals come from its labels filtered to the step's
    classes: the same image in two steps must not get the other step's cached proposals (memory or disk)."""
    from benchmark.method import filter_sample
    from streams.builder import open_dataset

    sample = open_dataset("demo", "train", demo_root).load(0)
    present = sorted(int(c) for c in np.unique(sample.sem_seg) if c < 40)
    first, second = filter_sample(sample, present[:1]), filter_sample(sample, present)
    segmenter = _segmenter(tmp_path, proposals="oracle")
    counts = [len(segmenter.cached_image_features([s])[0].embeddings) for s in (first, second)]
    assert counts == [1, len(present)]
    fresh = _segmenter(tmp_path, proposals="oracle")  # the disk cache alone
    assert [len(fresh.cached_image_features([s])[0].embeddings) for s in (second, first)] == [len(present), 1]
    assert fresh.backbone_images == 0


def _summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())["metrics"]


def _passes(run_dir):
    return json.loads((run_dir / "manifest.json").read_text())["passes"]


def test_changed_prompt_template_recomputes_and_equals_a_cold_run(run_demo, tmp_path, monkeypatch):
    from benchmark.models import segmenter as segmenter_module

    shared = f"model.cache_dir={tmp_path / 'features'}"
    run_demo(*RUN, shared)
    monkeypatch.setitem(segmenter_module.PROMPT_TEMPLATES, "single", ("a picture of a {}.",))
    second, _ = run_demo(*RUN, shared)
    assert _passes(second)["backbone_images"] > 0  # the first run's entries were not reused
    cold, _ = run_demo(*RUN, "model.cache_dir=off")
    assert _summary(second) == _summary(cold)


def test_poisoned_cache_cannot_make_an_honest_zeroshot_run_score_high(run_demo, demo_root, tmp_path):
    """The issue's attack: overwrite the cached features of the validation images with the text embedding of
    each proposal's true class. Written as the feature cache writes (checksum recomputed) it works, which shows
    the poison is potent; written by other code it fails the checksum and the run equals a cold one."""
    from benchmark.data.types import IGNORE_LABEL
    from benchmark.models.feature_cache import image_key
    from streams.builder import open_dataset

    shared = f"model.cache_dir={tmp_path / 'features'}"
    honest, _ = run_demo(*RUN, shared)
    segmenter = _segmenter(tmp_path / "features")
    val = open_dataset("demo", "val", demo_root)
    text = segmenter.text_embeddings(val.vocabulary).numpy()  # row c: class c
    poisoned = {}
    for i in range(8):
        sample = val.load(i)
        key = image_key(sample)
        with np.load(segmenter.disk_cache._path(key)) as data:
            arrays = {name: data[name] for name in data.files}
        proposals = arrays["proposal_codes"].astype(np.int64) - 1
        embeddings = arrays["embeddings"].copy()
        for p in range(len(embeddings)):
            labels = sample.sem_seg[(proposals == p) & (sample.sem_seg != IGNORE_LABEL)]
            if labels.size:
                embeddings[p] = text[np.bincount(labels).argmax()]
        poisoned[key] = {**arrays, "embeddings": embeddings}

    for key, arrays in poisoned.items():  # forged with the cache's own writer: the attack works
        segmenter.disk_cache.put(key, **{k: v for k, v in arrays.items() if not k.startswith("_")})
    forged, _ = run_demo(*RUN, shared)
    assert _summary(forged)["miou"]["final"] > 50 > _summary(honest)["miou"]["final"]  # percent

    for key, arrays in poisoned.items():  # written by other code, the old checksum kept: detected
        np.savez(segmenter.disk_cache._path(key), **arrays)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detected, _ = run_demo(*RUN, shared)
    assert sum("feature cache entry" in str(w.message) for w in caught) == 1
    assert _passes(detected)["backbone_images"] == 8
    assert _summary(detected) == _summary(honest)
