"""Reading a predictions folder's meta.json into a `PredictionsMeta` (benchmark/models/cached/reading.py): each
version's keys and defaults, and the width of one query's class scores."""
import pytest

from benchmark.errors import DataError, UserError
from benchmark.io import atomic_write_json
from benchmark.models.cached.format import ensemble_settings, write_meta
from benchmark.models.cached.reading import read_meta


def test_v3_with_an_ensemble_reads_the_producers_settings(tmp_path):
    write_meta(tmp_path, "toy", [3, 5, 7], void=True, ensemble=ensemble_settings(0.4, 0.8, True, [1, 0, 1]),
               semantic_at_input=True, object_threshold=0.5, overlap_threshold=0.6, producer="test")
    meta = read_meta(tmp_path)
    assert (meta.version, meta.class_ids, meta.void, meta.semantic_at_input) == (3, [3, 5, 7], True, True)
    assert meta.thresholds == (0.5, 0.6) and meta.ensemble["on_valid_mask"] is True
    assert meta.score_names == ["class_logits", "out_vocab_logits"]
    assert meta.score_width == 3 + 1 + 3  # class logits, void, out-of-vocabulary logits


def test_v1_reads_no_object_as_void_with_the_old_defaults(tmp_path):
    atomic_write_json(tmp_path / "meta.json", {"format": "covseg-predictions", "version": 1, "vocabulary": "toy",
                                               "class_ids": [3, 5], "no_object": True})
    meta = read_meta(tmp_path)
    assert meta.void and meta.ensemble is None and meta.thresholds == (0.8, 0.8) and meta.logit_scale == 100.0
    assert (meta.score_names, meta.score_width) == (["logits"], 3)


def test_a_missing_or_foreign_meta_is_one_line(tmp_path):
    with pytest.raises(UserError, match="no meta.json there"):
        read_meta(tmp_path)
    atomic_write_json(tmp_path / "meta.json", {"format": "other", "version": 9, "class_ids": []})
    with pytest.raises(DataError, match=r"meta.json: format other v9 is not covseg-predictions v1 or v2 or v3"):
        read_meta(tmp_path)
