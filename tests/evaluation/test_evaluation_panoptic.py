"""PQ against a hand-computed case and against panopticapi's algorithm (ported in benchmark.perf.references) on
seeded synthetic maps with crowd and VOID, and on the COCO panoptic sample with perturbed predictions."""
import json
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from benchmark.data.readers import rgb_to_id
from benchmark.data.types import SegmentInfo
from benchmark.evaluation.panoptic import PanopticEvaluator, image_pq_stats
from benchmark.perf.eval import perturb_panoptic, synthetic_panoptic
from benchmark.perf.references import panoptic_as_panopticapi, panopticapi_image_stats, panopticapi_pq_average


def assert_same_results(ours: dict, reference: dict, per_class_keys=None):
    for group in ("All", "Things", "Stuff"):
        assert ours[group]["n"] == reference[group]["n"], group
        for key in ("pq", "sq", "rq"):
            assert ours[group][key] == pytest.approx(reference[group][key], abs=1e-9, nan_ok=True), (group, key)
    for category, values in reference["per_class"].items():
        ours_values = ours["per_class"][per_class_keys[category] if per_class_keys else category]
        for key in ("pq", "sq", "rq"):
            assert ours_values[key] == pytest.approx(values[key], abs=1e-9), (category, key)


def reference_results(images, isthing, gt_areas_from_map=True):
    categories = {c: {"id": c, "isthing": int(t)} for c, t in enumerate(isthing)}
    total = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0, "iou": 0.0})
    for pred_pan, pred_segments, gt_pan, gt_segments in images:
        gt_segms = panoptic_as_panopticapi(gt_segments, gt_pan if gt_areas_from_map else None)
        stats = panopticapi_image_stats(gt_pan, gt_segms, pred_pan, panoptic_as_panopticapi(pred_segments), categories)
        for label, s in stats.items():
            for key in s:
                total[label][key] += s[key]
    return panopticapi_pq_average(total, categories)


def test_golden_hand_computed():
    # GT: A (thing 1), B (thing 1, crowd), C (stuff 0), D (thing 2), 0 = VOID
    gt = np.array([[1, 1, 1, 2, 2, 0],
                   [1, 1, 1, 2, 2, 0],
                   [3, 3, 3, 3, 4, 4],
                   [3, 3, 3, 3, 4, 4]])
    pred = np.array([[10, 10, 11, 11, 11, 11],
                     [10, 10, 11, 11, 11, 11],
                     [12, 12, 12, 12, 12, 13],
                     [12, 12, 12, 12, 12, 13]])
    gt_segments = [SegmentInfo(1, 1, False, True), SegmentInfo(2, 1, True, True), SegmentInfo(3, 0),
                   SegmentInfo(4, 2, False, True)]
    pred_segments = [SegmentInfo(10, 1), SegmentInfo(11, 1), SegmentInfo(12, 0), SegmentInfo(13, 2)]
    stats = image_pq_stats(pred, pred_segments, gt, gt_segments, 3)
    # (A,10): 4 / (4+6-4) = 2/3 TP. (C,12): 8 / (10+8-8) = 0.8 TP. (D,13): 2 / (2+4-2) = 0.5, not > 0.5.
    # 11 is unmatched but 2 VOID + 4 same-class crowd of its 8 pixels: ignored. 13 is a FP, D a FN.
    assert stats["tp"].tolist() == [1, 1, 0] and stats["fp"].tolist() == [0, 0, 1]
    assert stats["fn"].tolist() == [0, 0, 1]
    evaluator = PanopticEvaluator([False, True, True])
    evaluator.process(pred, pred_segments, gt, gt_segments)
    result = evaluator.evaluate()
    assert result["per_class"][0] == pytest.approx({"pq": 0.8, "sq": 0.8, "rq": 1.0}, abs=1e-12)
    assert result["per_class"][1] == pytest.approx({"pq": 2 / 3, "sq": 2 / 3, "rq": 1.0}, abs=1e-12)
    assert result["per_class"][2] == {"pq": 0.0, "sq": 0.0, "rq": 0.0}
    assert result["All"] == pytest.approx({"pq": (0.8 + 2 / 3) / 3, "sq": (0.8 + 2 / 3) / 3, "rq": 2 / 3, "n": 3})
    assert result["Things"] == pytest.approx({"pq": 1 / 3, "sq": 1 / 3, "rq": 0.5, "n": 2})
    assert result["Stuff"] == pytest.approx({"pq": 0.8, "sq": 0.8, "rq": 1.0, "n": 1})


@pytest.mark.parametrize("seed", range(4))
def test_matches_panopticapi_on_synthetic_maps(seed):
    rng = np.random.default_rng(seed)
    isthing = np.arange(12) < 7
    images = []
    for _ in range(4):
        gt_pan, gt_segments = synthetic_panoptic(rng, 60, 80, isthing, num_things=12)
        pred_pan, pred_segments = perturb_panoptic(rng, gt_pan, gt_segments, 12, shift=3, relabel=0.2)
        images.append((pred_pan, pred_segments, gt_pan, gt_segments))
    assert any(s.iscrowd for image in images for s in image[3]) and all((image[2] == 0).any() for image in images)
    evaluator = PanopticEvaluator(isthing)
    for image in images:
        evaluator.process(*image)
    assert_same_results(evaluator.evaluate(), reference_results(images, isthing))


def test_unlisted_ground_truth_ids_and_repeated_crowds_follow_panopticapi():
    rng = np.random.default_rng(7)
    isthing = np.arange(6) < 3
    gt_pan, gt_segments = synthetic_panoptic(rng, 50, 70, isthing, num_things=10)
    gt_segments = gt_segments[:-2]  # their pixels stay in the map with ids the list does not know
    gt_segments += [SegmentInfo(999, 0, True, True), SegmentInfo(998, 0, True, True)]  # two crowds, class 0
    gt_pan[:10, :10], gt_pan[40:, 50:] = 999, 998
    pred_pan, pred_segments = perturb_panoptic(rng, gt_pan, gt_segments, 6)
    pred_pan[38:, 48:] = 77  # a class-0 prediction mostly inside the second (last-listed) crowd region
    pred_segments = [s for s in pred_segments if s.id in set(np.unique(pred_pan).tolist())] + [SegmentInfo(77, 0)]
    images = [(pred_pan, pred_segments, gt_pan, gt_segments)]
    evaluator = PanopticEvaluator(isthing)
    evaluator.process(*images[0])
    assert_same_results(evaluator.evaluate(), reference_results(images, isthing))


def test_shards_add_up_bitwise():
    rng = np.random.default_rng(3)
    isthing = np.arange(10) < 6
    images = []
    for _ in range(6):
        gt = synthetic_panoptic(rng, 40, 50, isthing, num_things=8)
        images.append((*perturb_panoptic(rng, *gt, 10), *gt))
    whole, first, second = PanopticEvaluator(isthing), PanopticEvaluator(isthing), PanopticEvaluator(isthing)
    for i, image in enumerate(images):
        whole.process(*image)
        (first if i < 2 else second).process(*image)
    for key, values in whole.stats.items():
        assert (first.stats[key] + second.stats[key] == values).all(), key


def test_invalid_inputs():
    gt = np.array([[1, 1], [0, 2]])
    gt_segments = [SegmentInfo(1, 0), SegmentInfo(2, 1)]
    evaluator = PanopticEvaluator([False, True])
    with pytest.raises(ValueError, match="segment id 5 is in the prediction map"):
        evaluator.process(np.array([[5, 5], [0, 0]]), [], gt, gt_segments)
    with pytest.raises(ValueError, match="category 4"):
        evaluator.process(gt, [SegmentInfo(1, 4), SegmentInfo(2, 1)], gt, gt_segments)
    with pytest.raises(ValueError, match="segment id 3 is in the prediction's segments"):
        evaluator.process(gt, [SegmentInfo(1, 0), SegmentInfo(2, 1), SegmentInfo(3, 1)], gt, gt_segments,
                          require_pixels=True)


def load_coco_sample(root):
    data = json.loads((root / "panoptic_examples.json").read_text())
    category_ids = sorted(c["id"] for c in data["categories"])
    contiguous = {c: i for i, c in enumerate(category_ids)}
    isthing = np.array([{c["id"]: c["isthing"] for c in data["categories"]}[c] == 1 for c in category_ids])
    samples = []
    for ann in data["annotations"]:
        pan = rgb_to_id(np.asarray(Image.open(root / "panoptic_examples" / ann["file_name"]).convert("RGB")))
        segments = [SegmentInfo(s["id"], contiguous[s["category_id"]], bool(s["iscrowd"]),
                                bool(isthing[contiguous[s["category_id"]]]), s["area"]) for s in ann["segments_info"]]
        samples.append((pan, segments))
    return samples, isthing


def test_coco_sample_against_itself_and_perturbed(shared_fixtures):
    samples, isthing = load_coco_sample(shared_fixtures / "coco_panoptic_sample")
    assert any(s.iscrowd for _, segments in samples for s in segments)
    itself = PanopticEvaluator(isthing)
    for pan, segments in samples:
        itself.process(pan, segments, pan, segments)
    result = itself.evaluate()
    assert result["All"]["pq"] == 1.0 and result["All"]["n"] == 8  # 8 categories have non-crowd segments
    rng = np.random.default_rng(0)
    for _ in range(3):
        images = [(*perturb_panoptic(rng, pan, segments, len(isthing), shift=6, relabel=0.15), pan, segments)
                  for pan, segments in samples]
        evaluator = PanopticEvaluator(isthing)
        for image in images:
            evaluator.process(*image)
        # ground-truth areas from the JSON, as panopticapi reads them
        assert_same_results(evaluator.evaluate(), reference_results(images, isthing, gt_areas_from_map=False))
