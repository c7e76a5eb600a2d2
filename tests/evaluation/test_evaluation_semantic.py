"""Semantic evaluator against hand-computed numbers, a naive per-class reference, detectron2's two mIoU
formulas (ported in benchmark.perf.references) and torchmetrics; every test runs on both accumulation paths (the
compiled kernel and the numpy fallback)."""
import numpy as np
import pytest
import torch

from benchmark.data.types import IGNORE_LABEL
from benchmark.evaluation import semantic
from benchmark.evaluation.semantic import SemanticEvaluator, add_confusion, confusion_matrix, mean_iou
from benchmark.perf.eval import synthetic_semantic
from benchmark.perf.references import detectron2_confusion, detectron2_semseg_metrics

K = 4
GT = np.array([[0, 0, 1, 1], [2, IGNORE_LABEL, IGNORE_LABEL, 1]])
PRED = np.array([[0, 3, 1, 1], [1, 3, 3, 1]])


@pytest.fixture(autouse=True, params=["kernel", "numpy"])
def accumulation_path(request, monkeypatch):
    if request.param == "kernel" and not semantic.kernel_available():
        pytest.skip("the C kernel is not built (pip install -e . compiles it; a compiler is needed)")
    if request.param == "numpy":
        monkeypatch.setattr(semantic, "_kernel", None)
    return request.param


def test_golden_tiny_map():
    # pairs (gt, pred): (0,0) (0,3) (1,1) (1,1) (2,1) (1,1); the two ignored pixels predicted 3 do not count
    confusion = confusion_matrix(PRED, GT, K)
    assert confusion.tolist() == [[1, 0, 0, 1], [0, 3, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    present = SemanticEvaluator(K)
    present.process(PRED, GT)
    result = present.evaluate()
    assert result["per_class_iou"][:3] == pytest.approx([50.0, 75.0, 0.0])  # 1/2, 3/4, 0/1
    assert np.isnan(result["per_class_iou"][3])  # predicted but without ground truth
    assert result["miou"] == pytest.approx(100 * 1.25 / 3)
    assert result["pacc"] == pytest.approx(100 * 4 / 6)
    assert result["macc"] == pytest.approx(100 * (1 / 2 + 3 / 3 + 0 / 1) / 3)
    assert result["fwiou"] == pytest.approx(100 * (2 / 6 * 0.5 + 3 / 6 * 0.75))
    legacy = SemanticEvaluator(K, miou_mode="legacy")
    legacy.process(torch.as_tensor(PRED), torch.as_tensor(GT))
    assert legacy.evaluate()["miou"] == pytest.approx(100 * 1.25 / 4)  # class 3 predicted, absent: counts 0


def naive_confusion(pred, gt, num_classes, ignore):
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    for g in range(num_classes):
        for p in range(num_classes):
            confusion[g, p] = np.count_nonzero((gt == g) & (pred == p) & (gt != ignore))
    return confusion


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint16])
def test_matches_naive_reference_and_detectron2(dtype):
    rng = np.random.default_rng(0)
    num_classes = 13
    pred, gt = synthetic_semantic(rng, 37, 53, num_classes)
    pred[:3] = 12  # a class predicted over a band; it may or may not be present
    gt = gt.astype(dtype)
    assert (confusion_matrix(pred, gt, num_classes) == naive_confusion(pred, gt, num_classes, IGNORE_LABEL)).all()
    d2_conf = detectron2_confusion(pred, gt, num_classes)
    for mode, version in (("present", "current"), ("legacy", "v0.6")):
        evaluator = SemanticEvaluator(num_classes, miou_mode=mode)
        evaluator.process(pred, gt)
        ours, reference = evaluator.evaluate(), detectron2_semseg_metrics(d2_conf, version)
        for key in ("miou", "macc", "pacc", "fwiou"):
            assert ours[key] == pytest.approx(reference[key], abs=1e-9), key
        np.testing.assert_allclose(ours["per_class_iou"], reference["per_class_iou"], atol=1e-9)


def test_legacy_equals_torchmetrics_and_modes_differ():
    MulticlassJaccardIndex = pytest.importorskip("torchmetrics.classification").MulticlassJaccardIndex  # noqa: N806
    rng = np.random.default_rng(1)
    num_classes = 20
    metric = MulticlassJaccardIndex(num_classes=num_classes, ignore_index=IGNORE_LABEL, average="macro")
    evaluators = {mode: SemanticEvaluator(num_classes, miou_mode=mode) for mode in ("present", "legacy")}
    for _ in range(3):
        pred, gt = synthetic_semantic(rng, 40, 30, num_classes)
        gt[gt == 19] = 18  # class 19 never in ground truth, but predicted: the two modes disagree
        pred[0, :5] = 19
        metric.update(torch.from_numpy(pred)[None], torch.from_numpy(gt)[None])
        for evaluator in evaluators.values():
            evaluator.process(pred, gt)
    legacy, present = evaluators["legacy"].evaluate()["miou"], evaluators["present"].evaluate()["miou"]
    assert legacy == pytest.approx(100 * float(metric.compute()), abs=1e-4)  # torchmetrics sums in float32
    assert legacy < present


def test_shards_add_up_bitwise():
    rng = np.random.default_rng(2)
    images = [synthetic_semantic(rng, 20, 24, 9) for _ in range(6)]
    whole, first, second = SemanticEvaluator(9), SemanticEvaluator(9), SemanticEvaluator(9)
    for i, (pred, gt) in enumerate(images):
        whole.process(pred, gt)
        (first if i % 2 else second).process(pred, gt)
    assert ((first.confusion + second.confusion) == whole.confusion).all()
    batch = SemanticEvaluator(9)
    batch.process(np.stack([p for p, _ in images]), np.stack([g for _, g in images]))
    assert (batch.confusion == whole.confusion).all()


def test_subset_mean_iou():
    confusion = confusion_matrix(PRED, GT, K)
    assert mean_iou(confusion, [1, 2, 3]) == pytest.approx(100 * 0.75 / 2)
    assert mean_iou(confusion, [1, 2, 3], "legacy") == pytest.approx(100 * 0.75 / 3)
    assert np.isnan(mean_iou(confusion, [3]))


@pytest.mark.parametrize(
    "pred_value, gt_value, message",
    [(4, 0, "prediction holds class id 4"), (-1, 0, "prediction holds class id -1"),
     (0, 7, "ground truth holds label 7"), (0, -2, "ground truth holds label -2")],
)
def test_bad_labels_are_named(pred_value, gt_value, message):
    pred, gt = np.zeros((2, 3), dtype=np.int64), np.zeros((2, 3), dtype=np.int64)
    pred[1, 1], gt[0, 2] = pred_value, gt_value
    with pytest.raises(ValueError, match=message):
        confusion_matrix(pred, gt, K)


def test_shape_mismatch_and_bad_mode():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 3), dtype=int), np.zeros((3, 2), dtype=int), K)
    with pytest.raises(ValueError, match="integer class ids, got dtype float32"):
        confusion_matrix(np.zeros((2, 3), dtype=np.float32), np.zeros((2, 3), dtype=int), K)
    with pytest.raises(ValueError, match="miou_mode"):
        SemanticEvaluator(K, miou_mode="mean")


LABEL_DTYPES = [np.uint8, np.uint16, np.int32, np.int64, np.int16, np.uint32, ">u2", ">i8"]


@pytest.mark.parametrize("gt_dtype", LABEL_DTYPES)
@pytest.mark.parametrize("pred_dtype", [np.int64, np.int32, np.uint8, np.int16, ">i8"])
def test_every_dtype_matches_naive(pred_dtype, gt_dtype):
    rng = np.random.default_rng(3)
    num_classes = 11
    pred, gt = synthetic_semantic(rng, 19, 23, num_classes)
    if np.iinfo(gt_dtype).max < IGNORE_LABEL:  # 8-bit ground truth (PNG): 255 is the ignore value
        gt[gt == IGNORE_LABEL] = 255
        ignore = 255
    else:
        ignore = IGNORE_LABEL
    pred, gt = pred.astype(pred_dtype), gt.astype(gt_dtype)
    expected = naive_confusion(pred, gt, num_classes, ignore)
    assert (confusion_matrix(pred, gt, num_classes, ignore) == expected).all()
    strided = confusion_matrix(np.asfortranarray(pred)[:, ::2], np.asfortranarray(gt)[:, ::2], num_classes, ignore)
    assert (strided == naive_confusion(pred[:, ::2], gt[:, ::2], num_classes, ignore)).all()


@pytest.mark.parametrize("pred_value, gt_value", [(11, 0), (-1, 0), (0, 12), (0, -3), (0, 70000)])
def test_a_failed_update_leaves_the_matrix_unchanged(pred_value, gt_value):
    rng = np.random.default_rng(4)
    pred, gt = synthetic_semantic(rng, 16, 16, 11)
    confusion = confusion_matrix(pred, gt, 11)
    before = confusion.copy()
    pred[9, 9], gt[9, 9] = pred_value, gt_value  # after many good pixels
    with pytest.raises(ValueError, match=str(pred_value if pred_value != 0 else gt_value)):
        add_confusion(confusion, pred, gt)
    assert (confusion == before).all()


def test_kernel_refuses_what_it_cannot_read(accumulation_path):
    if accumulation_path != "kernel":
        pytest.skip("the C kernel's own argument checks")
    from benchmark.evaluation import _confusion

    confusion = np.zeros((3, 3), dtype=np.int64)
    good = np.zeros(4, dtype=np.int64)
    for pred, gt, conf in ((good.astype(">i8"), good, confusion), (good.astype(np.float64), good, confusion),
                           (good, good.astype(np.float32), confusion), (good, good, np.zeros((3, 3), np.int32)),
                           (good, good, np.zeros((2, 3), np.int64))):
        with pytest.raises(TypeError):
            _confusion.accumulate(pred, gt, conf, IGNORE_LABEL)
    with pytest.raises(ValueError, match="differ in length"):
        _confusion.accumulate(good, good[:3], confusion, IGNORE_LABEL)
    assert _confusion.accumulate(good, good, confusion, IGNORE_LABEL) == -1 and confusion[0, 0] == 4
