"""model=cached zero-shot against the real FC-CLIP code: golden fixtures recorded by tools/record_fcclip_golden.py
(FC-CLIP @7791b83 with detectron2, random seeded weights made diverse by the patches that recording.json lists)
hold this project's exported predictions for four demo validation images and FC-CLIP's own semantic and
panoptic outputs, over the full vocabulary and over subsets of the class names. Two sets: `plain`
(fixtures/fcclip_golden) and `void` (fixtures/fcclip_golden_void: a third of the queries void-winning,
ENSEMBLE_ON_VALID_MASK on with invalid masks, two subsets). Neither detectron2 nor FC-CLIP is needed here, except
by the slow re-recording test."""
import json
import os
import shutil
import subprocess
import sys
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

REPO = Path(__file__).resolve().parents[2]
SETS = {"plain": REPO / "tests" / "fixtures" / "fcclip_golden", "void": REPO / "tests" / "fixtures" / "fcclip_golden_void"}
RECORDINGS = {name: json.loads((folder / "recording.json").read_text()) for name, folder in SETS.items()}
FIXTURES, RECORDING = SETS["plain"], RECORDINGS["plain"]
# (set, config): a847 (semantic only, scores resized after inference), ade150 (+ panoptic)
CASES = [(fixture_set, name) for fixture_set, recording in RECORDINGS.items() for name in sorted(recording["configs"])]
# (set, config, subset prefix or None for the full vocabulary)
SUBSET_CASES = [(fixture_set, name, prefix) for fixture_set, name in CASES
                for prefix in (None, "subset", "subset2")
                if prefix is None or f"{prefix}_class_ids" in RECORDINGS[fixture_set]["configs"][name]]


def case_id(case: tuple) -> str:
    return "-".join(part or "all_classes" for part in case)


def vocabulary(fixture_set: str, name: str, subset: str | None) -> Vocabulary:
    config = RECORDINGS[fixture_set]["configs"][name]
    vocab = Vocabulary.load(config["vocabulary"])
    return vocab.subset(config[f"{subset}_class_ids"]) if subset else vocab


def zeroshot(folder: Path, vocab: Vocabulary, panoptic: bool, images: list[dict] | None = None):
    segmenter = CachedSegmenter(OmegaConf.create({"kind": "cached", "predictions_dir": str(folder), "batch_size": 1}))
    images = [ImageInput(image["image_id"], np.zeros((image["height"], image["width"], 3), np.uint8),
                         panoptic=panoptic) for image in images or RECORDING["images"]["list"]]
    return segmenter, images, ZeroShot(ZeroShot.Config(), segmenter, num_classes=len(vocab)).predict(images, vocab)


def zeroshot_case(fixture_set: str, name: str, vocab: Vocabulary, panoptic: bool, folder: Path | None = None):
    recording = RECORDINGS[fixture_set]
    folder = folder or SETS[fixture_set] / recording["configs"][name]["predictions"]
    return zeroshot(folder, vocab, panoptic, recording["images"]["list"])


def fcclip_outputs(fixture_set: str, name: str, subset: str | None) -> tuple[dict, dict]:
    recording = RECORDINGS[fixture_set]
    config = recording["configs"][name]
    prefix = f"{subset}_" if subset else ""
    with np.load(SETS[fixture_set] / config["fcclip_outputs"]) as data:
        arrays = {image["image_id"]: {key: data[f"{image['image_id']}/{prefix}{key}"]
                                      for key in ("sem", "sem_margin", "pan")
                                      if f"{image['image_id']}/{prefix}{key}" in data.files}
                  for image in recording["images"]["list"]}
    return arrays, config[f"{prefix}segments"]


@pytest.mark.parametrize("fixture_set, name, subset", SUBSET_CASES, ids=map(case_id, SUBSET_CASES))
def test_golden_zeroshot_equals_fcclip(fixture_set, name, subset):
    """FC-CLIP's semantic argmax and panoptic map (segments, ids, classes) on every pixel, with the mask logits
    exported unquantised (float32); a subset: FC-CLIP run with only those class names."""
    config = RECORDINGS[fixture_set]["configs"][name]
    vocab = vocabulary(fixture_set, name, subset)
    ids = np.asarray(vocab.ids)
    golden, segments = fcclip_outputs(fixture_set, name, subset)
    _, images, outputs = zeroshot_case(fixture_set, name, vocab, config["panoptic"])
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
    for fixture_set, name in CASES:
        golden, _ = fcclip_outputs(fixture_set, name, None)
        assert min(len(np.unique(arrays["sem"])) for arrays in golden.values()) >= 3, name
    merged = []
    original = mask_inference.paste_segment

    def paste_segment(pan_seg, segments, scores, stuff_segment, visible, visible_area, class_id, isthing, score):
        merged.append(not isthing and class_id in stuff_segment)
        original(pan_seg, segments, scores, stuff_segment, visible, visible_area, class_id, isthing, score)

    monkeypatch.setattr(mask_inference, "paste_segment", paste_segment)
    _, _, outputs = zeroshot(FIXTURES / "ade150" / "predictions", vocabulary("plain", "ade150", None), panoptic=True)
    assert any(merged), "no stuff query merged into an earlier one's segment"
    assert max(len(out.segments) for out in outputs) >= 4
    instances = [max(np.unique([s.category_id for s in out.segments if s.isthing], return_counts=True)[1], default=0)
                 for out in outputs]
    assert max(instances) >= 2, "no image with two instances of one thing class"


def test_golden_void_fixtures_exercise_void_and_valid_masks():
    """The void set exercises FC-CLIP's void step and ENSEMBLE_ON_VALID_MASK: in every image a fifth or more of the
    queries have void as FC-CLIP's argmax (dropped by its panoptic inference), and three or more queries have no
    valid mask (their class scores skip the out-of-vocabulary ensemble)."""
    for name in sorted(RECORDINGS["void"]["configs"]):
        vocab = vocabulary("void", name, None)
        segmenter, images, _ = zeroshot_case("void", name, vocab, panoptic=False)
        assert segmenter.ensemble["on_valid_mask"], name
        for image, feats in zip(images, segmenter.image_features(images)):
            probs, void = segmenter.probs_with_void(feats.logits, vocab, segmenter.valid_masks(feats))
            void_wins = float((void > probs.max(dim=1).values).float().mean())
            invalid = int((~feats.soft_masks.valid).sum())
            assert void_wins >= 0.2 and invalid >= 3, (name, image.image_id, void_wins, invalid)


@pytest.mark.parametrize("fixture_set, name", CASES, ids=map(case_id, CASES))
def test_golden_subset_is_not_the_full_vocabulary_restricted(fixture_set, name):
    """Format v2's recipe for a subset (FC-CLIP's class scores after its ensemble over all classes, restricted to
    the subset's columns and void) does not give FC-CLIP run with the subset's names on these fixtures: the
    subset case of `test_golden_zeroshot_equals_fcclip` needs format v3's ensemble over the subset."""
    full, subset = vocabulary(fixture_set, name, None), vocabulary(fixture_set, name, "subset")
    golden, _ = fcclip_outputs(fixture_set, name, "subset")
    segmenter, images, _ = zeroshot_case(fixture_set, name, subset, panoptic=False)
    assert segmenter.class_ids == full.ids  # so the subset's ids are its columns, void is column len(full)
    columns = [*subset.ids, len(full)]
    differ = 0
    for image, feats in zip(images, segmenter.image_features(images)):
        probs = segmenter.class_logits(feats.logits, full)[:, columns].softmax(dim=1)
        out = mask_inference.outputs_from_soft_masks(feats.soft_masks, probs[:, :-1], probs[:, -1], subset,
                                                     panoptic=False)
        differ += int((out.sem_seg != np.asarray(subset.ids)[golden[image.image_id]["sem"]]).sum())
    assert differ > 0


def float16_copy(fixture_set: str, name: str, folder: Path) -> dict[str, torch.Tensor]:
    """A copy of the fixture's predictions with the mask logits stored as float16 (format v3's default, by
    mask_inference.store_mask_logits); returns each image's (Q,) largest |mask logit| L_q. A mask probability
    read back is then within L_q / 8192 of FC-CLIP's (store_mask_logits states the bound)."""
    recording = RECORDINGS[fixture_set]
    shutil.copytree(SETS[fixture_set] / recording["configs"][name]["predictions"], folder)
    largest = {}
    for image in recording["images"]["list"]:
        arrays = read_image_predictions(folder, image["image_id"])
        assert arrays["mask_logits"].dtype == np.float32  # the fixtures are unquantised
        logits = arrays["mask_logits"]
        largest[image["image_id"]] = torch.from_numpy(np.abs(logits).reshape(len(logits), -1).max(1))
        arrays["mask_logits"] = mask_inference.store_mask_logits(arrays["mask_logits"], "float16")
        prediction_file(folder, image["image_id"]).unlink()
        write_image_predictions(folder, image["image_id"], arrays)
    return largest


@pytest.mark.parametrize("fixture_set, name", CASES, ids=map(case_id, CASES))
def test_golden_float16_changes_labels_only_within_the_stated_bound(fixture_set, name, tmp_path):
    """With float16 mask logits a semantic label may differ from FC-CLIP's only where FC-CLIP's top-2 score
    margin is within what float16 can move it: the scores of two classes c, c' move by at most
    sum_q (P(q, c) + P(q, c')) L_q / 8192 (`float16_copy`)."""
    largest = float16_copy(fixture_set, name, tmp_path / "float16")
    vocab = vocabulary(fixture_set, name, None)
    golden, _ = fcclip_outputs(fixture_set, name, None)
    segmenter, images, outputs = zeroshot_case(fixture_set, name, vocab, False, tmp_path / "float16")
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
    print(f"{fixture_set} {name}: {changed} pixel(s) change label with float16 mask logits, all within the bound")


@pytest.mark.parametrize("fixture_set", sorted(SETS))
def test_golden_float16_panoptic_changes_only_near_ties(fixture_set, tmp_path):
    """With float16 mask logits FC-CLIP's panoptic segments stay, and a pixel may change segment only at a
    near-tie of FC-CLIP's inference on the exact logits: two kept queries' score x mask probability within
    what float16 can move them, or a kept query's mask probability within its bound of the 0.5 cut."""
    largest = float16_copy(fixture_set, "ade150", tmp_path / "float16")
    vocab = vocabulary(fixture_set, "ade150", None)
    golden, segments = fcclip_outputs(fixture_set, "ade150", None)
    exact, images, _ = zeroshot_case(fixture_set, "ade150", vocab, panoptic=True)
    _, _, outputs = zeroshot_case(fixture_set, "ade150", vocab, True, tmp_path / "float16")
    for image, out, feats in zip(images, outputs, exact.image_features(images)):
        assert [(s.id, s.category_id) for s in out.segments] == \
            [(s["id"], s["category_id"]) for s in segments[image.image_id]]
        rows, cols = np.nonzero(out.pan_seg != golden[image.image_id]["pan"])
        probs, void = exact.probs_with_void(feats.logits, vocab, exact.valid_masks(feats))
        scores, labels = torch.cat([probs, void[:, None]], dim=1).max(-1)
        keep = labels.ne(len(vocab)) & (scores > feats.soft_masks.object_threshold)  # FC-CLIP's kept queries
        mask_probs = feats.soft_masks.probabilities()[keep][:, rows, cols]  # (K, changed pixels)
        moved = largest[image.image_id][keep] / 8192  # (K,) how far float16 can move each mask probability
        top2 = (scores[keep][:, None] * mask_probs).topk(2, dim=0).values
        owner_tie = top2[0] - top2[1] <= 2 * (scores[keep] * moved).max()
        cut_tie = ((mask_probs - 0.5).abs() <= moved[:, None]).any(0)
        assert torch.all(owner_tie | cut_tie), image.image_id


RECORDER = REPO / "tools" / "record_fcclip_golden.py"
# the recording's environment (tools/README.md): its python, and the fc-clip and detectron2 checkouts
GOLDEN_PYTHON = os.environ.get("GOLDEN_PYTHON", sys.executable)
FCCLIP_DIR, DETECTRON2_DIR = os.environ.get("FCCLIP_DIR"), os.environ.get("DETECTRON2_DIR")


def fcclip_importable() -> bool:
    if not FCCLIP_DIR or not DETECTRON2_DIR:
        return False
    probe = subprocess.run([GOLDEN_PYTHON, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import detectron2, "
                            "fcclip", FCCLIP_DIR], capture_output=True, cwd=FCCLIP_DIR)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("fixture_set", sorted(SETS))
def test_golden_rerecording_is_byte_for_byte(fixture_set):
    """tools/record_fcclip_golden.py --check re-records the committed set with the real FC-CLIP and finds every
    file byte for byte equal (recording.json less where and from which commit it was recorded). Needs
    FCCLIP_DIR, DETECTRON2_DIR (checkouts) and GOLDEN_PYTHON (default: this python) importing detectron2."""
    if not fcclip_importable():
        pytest.skip("needs FCCLIP_DIR, DETECTRON2_DIR and GOLDEN_PYTHON with detectron2 and fcclip importable")
    result = subprocess.run([GOLDEN_PYTHON, str(RECORDER), "--fcclip", FCCLIP_DIR, "--detectron2", DETECTRON2_DIR,
                             "--variant", fixture_set, "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
