"""model=cached zero-shot against the real FC-CLIP code: golden fixtures recorded by tools/record_fcclip_golden.py
(FC-CLIP @7791b83 with detectron2, random seeded weights made diverse by the patches that recording.json lists)
hold this project's exported predictions for four demo validation images and FC-CLIP's own semantic and
panoptic outputs, over the full vocabulary and over a subset of the class names. Neither detectron2 nor FC-CLIP
is needed here."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from baselines.zeroshot import ZeroShot
from benchmark.data.types import ImageInput, Vocabulary
from benchmark.models import mask_inference
from benchmark.models.cached.format import prediction_file, write_image_predictions
from benchmark.models.cached.reading import read_image_predictions
from benchmark.models.cached.segmenter import CachedSegmenter

FIXTURES = Path(__file__).parent / "fixtures" / "fcclip_golden"
RECORDING = json.loads((FIXTURES / "recording.json").read_text())
IMAGES = RECORDING["images"]["list"]
CONFIGS = sorted(RECORDING["configs"])  # a847 (semantic only, scores resized after inference), ade150 (+ panoptic)


def vocabulary(name: str, subset: bool) -> Vocabulary:
    config = RECORDING["configs"][name]
    vocab = Vocabulary.load(config["vocabulary"])
    return vocab.subset(config["subset_class_ids"]) if subset else vocab


def zeroshot(folder: Path, vocab: Vocabulary, panoptic: bool):
    segmenter = CachedSegmenter(OmegaConf.create({"kind": "cached", "predictions_dir": str(folder), "batch_size": 1}))
    images = [ImageInput(image["image_id"], np.zeros((image["height"], image["width"], 3), np.uint8),
                         panoptic=panoptic) for image in IMAGES]
    return segmenter, images, ZeroShot(ZeroShot.Config(), segmenter, num_classes=len(vocab)).predict(images, vocab)


def fcclip_outputs(name: str, subset: bool) -> tuple[dict, dict]:
    config = RECORDING["configs"][name]
    prefix = "subset_" if subset else ""
    with np.load(FIXTURES / config["fcclip_outputs"]) as data:
        arrays = {image["image_id"]: {key: data[f"{image['image_id']}/{prefix}{key}"]
                                      for key in ("sem", "sem_margin", "pan")
                                      if f"{image['image_id']}/{prefix}{key}" in data.files} for image in IMAGES}
    return arrays, config[f"{prefix}segments"]


@pytest.mark.parametrize("subset", [False, True], ids=["all_classes", "subset"])
@pytest.mark.parametrize("name", CONFIGS)
def test_golden_zeroshot_equals_fcclip(name, subset):
    """FC-CLIP's semantic argmax and panoptic map (segments, ids, classes) on every pixel, with the mask logits
    exported unquantised (float32); the subset: FC-CLIP run with only those class names."""
    config = RECORDING["configs"][name]
    vocab = vocabulary(name, subset)
    ids = np.asarray(vocab.ids)
    golden, segments = fcclip_outputs(name, subset)
    _, images, outputs = zeroshot(FIXTURES / config["predictions"], vocab, config["panoptic"])
    for image, out in zip(images, outputs):
        expected = golden[image.image_id]
        assert np.array_equal(out.sem_seg, ids[expected["sem"]]), image.image_id
        if config["panoptic"]:
            assert np.array_equal(out.pan_seg, expected["pan"]), image.image_id
            assert [(s.id, s.category_id, s.isthing) for s in out.segments] == \
                [(s["id"], int(ids[s["category_id"]]), s["isthing"]) for s in segments[image.image_id]]


def test_golden_fixtures_exercise_fcclip_inference(monkeypatch):
    """The recorded model is diverse enough for the comparison to mean something: several classes per map,
    several panoptic segments, thing instances of one class, and stuff queries merged into one segment."""
    for name in CONFIGS:
        golden, _ = fcclip_outputs(name, subset=False)
        assert min(len(np.unique(arrays["sem"])) for arrays in golden.values()) >= 3, name
    merged = []
    original = mask_inference.paste_segment

    def paste_segment(pan_seg, segments, scores, stuff_segment, visible, visible_area, class_id, isthing, score):
        merged.append(not isthing and class_id in stuff_segment)
        original(pan_seg, segments, scores, stuff_segment, visible, visible_area, class_id, isthing, score)

    monkeypatch.setattr(mask_inference, "paste_segment", paste_segment)
    _, _, outputs = zeroshot(FIXTURES / "ade150" / "predictions", vocabulary("ade150", False), panoptic=True)
    assert any(merged), "no stuff query merged into an earlier one's segment"
    assert max(len(out.segments) for out in outputs) >= 4
    instances = [max(np.unique([s.category_id for s in out.segments if s.isthing], return_counts=True)[1], default=0)
                 for out in outputs]
    assert max(instances) >= 2, "no image with two instances of one thing class"


@pytest.mark.parametrize("name", CONFIGS)
def test_golden_subset_is_not_the_full_vocabulary_restricted(name):
    """Format v2's recipe for a subset (FC-CLIP's class scores after its ensemble over all classes, restricted to
    the subset's columns and void) does not give FC-CLIP run with the subset's names on these fixtures: the
    subset case of `test_golden_zeroshot_equals_fcclip` needs format v3's ensemble over the subset."""
    config = RECORDING["configs"][name]
    full, subset = vocabulary(name, subset=False), vocabulary(name, subset=True)
    golden, _ = fcclip_outputs(name, subset=True)
    segmenter, images, _ = zeroshot(FIXTURES / config["predictions"], subset, panoptic=False)
    assert segmenter.class_ids == full.ids  # so the subset's ids are its columns, void is column len(full)
    columns = [*subset.ids, len(full)]
    differ = 0
    for image, feats in zip(images, segmenter.image_features(images)):
        probs = segmenter.class_logits(feats.logits, full)[:, columns].softmax(dim=1)
        out = mask_inference.outputs_from_soft_masks(feats.soft_masks, probs[:, :-1], probs[:, -1], subset,
                                                     panoptic=False)
        differ += int((out.sem_seg != np.asarray(subset.ids)[golden[image.image_id]["sem"]]).sum())
    assert differ > 0


def float16_copy(name: str, folder: Path) -> dict[str, torch.Tensor]:
    """A copy of the fixture's predictions with the mask logits stored as float16 (format v3's default, by
    mask_inference.store_mask_logits); returns each image's (Q,) largest |mask logit| L_q. A mask probability
    read back is then within L_q / 8192 of FC-CLIP's (store_mask_logits states the bound)."""
    shutil.copytree(FIXTURES / RECORDING["configs"][name]["predictions"], folder)
    largest = {}
    for image in IMAGES:
        arrays = read_image_predictions(folder, image["image_id"])
        assert arrays["mask_logits"].dtype == np.float32  # the fixtures are unquantised
        logits = arrays["mask_logits"]
        largest[image["image_id"]] = torch.from_numpy(np.abs(logits).reshape(len(logits), -1).max(1))
        arrays["mask_logits"] = mask_inference.store_mask_logits(arrays["mask_logits"], "float16")
        prediction_file(folder, image["image_id"]).unlink()
        write_image_predictions(folder, image["image_id"], arrays)
    return largest


@pytest.mark.parametrize("name", CONFIGS)
def test_golden_float16_changes_labels_only_within_the_stated_bound(name, tmp_path):
    """With float16 mask logits a semantic label may differ from FC-CLIP's only where FC-CLIP's top-2 score
    margin is within what float16 can move it: the scores of two classes c, c' move by at most
    sum_q (P(q, c) + P(q, c')) L_q / 8192 (`float16_copy`)."""
    largest = float16_copy(name, tmp_path / "float16")
    vocab = vocabulary(name, subset=False)
    golden, _ = fcclip_outputs(name, subset=False)
    segmenter, images, outputs = zeroshot(tmp_path / "float16", vocab, panoptic=False)
    changed = 0
    for image, out, feats in zip(images, outputs, segmenter.image_features(images)):
        probs = segmenter.base_probs(feats, vocab)  # (Q, C), as FC-CLIP's (the class scores are not quantised)
        expected = golden[image.image_id]
        rows, cols = np.nonzero(out.sem_seg != expected["sem"])
        changed += len(rows)
        ours = torch.from_numpy(out.sem_seg[rows, cols])
        theirs = torch.from_numpy(expected["sem"][rows, cols].astype(np.int64))
        bound = ((probs[:, ours] + probs[:, theirs]) * largest[image.image_id][:, None] / 8192).sum(0)
        margin = torch.from_numpy(expected["sem_margin"][rows, cols])
        assert torch.all(margin <= bound * (1 + 1e-4)), (image.image_id, margin.max().item())
    print(f"{name}: {changed} pixel(s) change label with float16 mask logits, all within the bound")


def test_golden_float16_panoptic_changes_only_near_ties(tmp_path):
    """With float16 mask logits FC-CLIP's panoptic segments stay, and a pixel may change segment only at a
    near-tie of FC-CLIP's inference on the exact logits: two kept queries' score x mask probability within
    what float16 can move them, or a kept query's mask probability within its bound of the 0.5 cut."""
    largest = float16_copy("ade150", tmp_path / "float16")
    vocab = vocabulary("ade150", subset=False)
    golden, segments = fcclip_outputs("ade150", subset=False)
    exact, images, _ = zeroshot(FIXTURES / RECORDING["configs"]["ade150"]["predictions"], vocab, panoptic=True)
    _, _, outputs = zeroshot(tmp_path / "float16", vocab, panoptic=True)
    for image, out, feats in zip(images, outputs, exact.image_features(images)):
        assert [(s.id, s.category_id) for s in out.segments] == \
            [(s["id"], s["category_id"]) for s in segments[image.image_id]]
        rows, cols = np.nonzero(out.pan_seg != golden[image.image_id]["pan"])
        probs, void = exact.probs_with_void(feats.logits, vocab)
        scores, labels = torch.cat([probs, void[:, None]], dim=1).max(-1)
        keep = labels.ne(len(vocab)) & (scores > feats.soft_masks.object_threshold)  # FC-CLIP's kept queries
        mask_probs = feats.soft_masks.probabilities()[keep][:, rows, cols]  # (K, changed pixels)
        moved = largest[image.image_id][keep] / 8192  # (K,) how far float16 can move each mask probability
        top2 = (scores[keep][:, None] * mask_probs).topk(2, dim=0).values
        owner_tie = top2[0] - top2[1] <= 2 * (scores[keep] * moved).max()
        cut_tie = ((mask_probs - 0.5).abs() <= moved[:, None]).any(0)
        assert torch.all(owner_tie | cut_tie), image.image_id
