"""Semantic segmentation evaluator: one int64 confusion matrix, additive across images and shards.

Definitions (detectron2 `SemSegEvaluator`); GT_c = pixels of class c in the ground truth, PRED_c = pixels
predicted as c among the pixels that are not ignored:
- confusion[g, p] counts pixels with ground truth g predicted as p; pixels whose ground truth is the ignore
  value are excluded.
- per-class IoU_c = TP_c / (TP_c + FP_c + FN_c), TP_c = confusion[c, c], FP_c = column sum - TP_c,
  FN_c = row sum - TP_c.
- mIoU, `miou_mode="present"` (detectron2 since 2022): mean of IoU_c over classes with GT_c > 0.
- mIoU, `miou_mode="legacy"` (detectron2 v0.6): sum of IoU_c over classes with GT_c > 0, divided by the
  number of classes with GT_c + PRED_c > 0, i.e. classes predicted but absent count as 0. This is also
  torchmetrics' `MulticlassJaccardIndex(average="macro", ignore_index=...)`.
- mAcc: mean of TP_c / GT_c over classes with GT_c > 0.   pAcc: sum_c TP_c / sum_c GT_c.
- fwIoU: sum over classes with GT_c > 0 of (GT_c / sum GT) * IoU_c.
All reported numbers are percentages; a class without ground-truth pixels reports IoU NaN (as detectron2).
"""
from __future__ import annotations

import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:  # torch is imported by whoever hands us tensors; reading statistics never needs it
    import torch

from benchmark.data.types import IGNORE_LABEL

MiouMode = Literal["present", "legacy"]
MIOU_MODES = ("present", "legacy")


class LabelError(ValueError):
    """A label map holds a value the evaluator cannot count; `in_prediction` says which map."""

    def __init__(self, message: str, in_prediction: bool) -> None:
        super().__init__(message)
        self.in_prediction = in_prediction


try:  # the one-pass C kernel (setup.py builds it); without it the numpy path below gives the same matrix
    import benchmark.evaluation._confusion as _kernel
except ImportError:  # pragma: no cover - depends on the install
    _kernel = None


def kernel_available() -> bool:
    """Whether the compiled accumulation kernel is in use (else the numpy bincount path)."""
    return _kernel is not None


@lru_cache(maxsize=8)
def _row_offsets(num_classes: int, ignore_index: int) -> np.ndarray:
    """Lookup table over 16-bit labels: label -> offset of its row in the padded flat (K + 1, K) matrix.

    Row 0 collects ignored pixels; class c uses row c + 1; labels that are neither get an offset past the
    end, so the bincount comes back too long and the bad label is reported.
    """
    size = np.iinfo(np.uint16).max + 1
    offsets = np.full(size, (num_classes + 1) * num_classes, dtype=np.intp)
    valid = min(num_classes, size)
    offsets[:valid] = (np.arange(valid) + 1) * num_classes
    if 0 <= ignore_index < size:
        offsets[ignore_index] = 0
    offsets.setflags(write=False)
    return offsets


def _as_numpy(labels: np.ndarray | torch.Tensor) -> np.ndarray:
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported
    if torch is not None and isinstance(labels, torch.Tensor):
        return labels.detach().cpu().numpy()
    return np.asarray(labels)


def _unsigned_max(values: np.ndarray) -> int:
    """Max of integer labels read as unsigned: one pass that also exposes negative values (as huge ones)."""
    if values.dtype.kind == "i":
        values = values.view(values.dtype.str.replace("i", "u"))
    return int(values.max())


def add_confusion(confusion: np.ndarray, pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor,
                  ignore_index: int = IGNORE_LABEL) -> None:
    """Add one prediction (or a batch of any shape) to the (K, K) int64 `confusion` in place; rows are ground
    truth, pixels whose ground truth is `ignore_index` are skipped.

    Raises LabelError (a ValueError) naming the first bad value (prediction outside 0..K-1 anywhere, ground
    truth neither a class id nor the ignore value); `confusion` is then left unchanged.
    """
    pred, gt = _as_numpy(pred), _as_numpy(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction has shape {pred.shape} but ground truth has shape {gt.shape}")
    for name, labels in (("prediction", pred), ("ground truth", gt)):
        if labels.dtype.kind not in "iub":
            raise LabelError(f"{name} must hold integer class ids, got dtype {labels.dtype}", name == "prediction")
    num_classes = confusion.shape[0]
    if _kernel is not None and confusion.dtype == np.int64 and confusion.flags.c_contiguous:
        if pred.dtype not in (np.int32, np.int64):
            pred = pred.astype(np.int64)
        if gt.dtype not in (np.uint8, np.uint16, np.int32, np.int64):
            gt = gt.astype(np.int64)
        pred, gt = np.ascontiguousarray(pred).reshape(-1), np.ascontiguousarray(gt).reshape(-1)
        bad = _kernel.accumulate(pred, gt, confusion, ignore_index)
        if bad >= 0:  # pixels before `bad` were added: take them back, then let the numpy path name the value
            confusion -= _confusion_numpy(pred[:bad], gt[:bad], num_classes, ignore_index)
            _confusion_numpy(pred, gt, num_classes, ignore_index)
            raise AssertionError("the C kernel and the numpy path disagree on which labels are valid")
        return
    confusion += _confusion_numpy(pred, gt, num_classes, ignore_index)


def confusion_matrix(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_LABEL) -> np.ndarray:
    """(K, K) int64 confusion matrix of one prediction (or a batch of any shape); rows are ground truth."""
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    add_confusion(confusion, pred, gt, ignore_index)
    return confusion


def _confusion_numpy(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """The numpy path: one pass builds flat indices into a (K + 1, K) matrix whose extra first row takes the
    ignored pixels, one bincount counts them (the detectron2 recipe, with the ignore row in front so bad
    labels are detectable)."""
    pred, gt = pred.reshape(-1), gt.reshape(-1)  # (N,), (N,)
    if pred.size and _unsigned_max(pred) >= num_classes:
        bad = pred[(pred < 0) | (pred >= num_classes)]
        raise LabelError(f"prediction holds class id {int(bad[0])} outside 0..{num_classes - 1}", True)
    offsets = _row_offsets(num_classes, ignore_index)  # (65536,)
    if gt.dtype in (np.uint8, np.uint16) or (gt.dtype.kind in "iu" and gt.size and _unsigned_max(gt) < offsets.size):
        index = np.take(offsets, gt)  # (N,) intp, bad labels already pointing past the end
    else:
        labelled = gt != ignore_index
        _check_gt(gt[labelled & ((gt < 0) | (gt >= num_classes))], num_classes, ignore_index)
        index = gt.astype(np.intp) + 1
        index[~labelled] = 0
        index *= num_classes
    index += pred
    counts = np.bincount(index, minlength=(num_classes + 1) * num_classes)
    if counts.size > (num_classes + 1) * num_classes:
        _check_gt(gt[(gt != ignore_index) & (gt >= num_classes)], num_classes, ignore_index)
    return counts[num_classes:].reshape(num_classes, num_classes)


def _check_gt(bad_labels: np.ndarray, num_classes: int, ignore_index: int) -> None:
    if bad_labels.size:
        raise LabelError(
            f"ground truth holds label {int(bad_labels.flat[0])}, neither a class id (0..{num_classes - 1}) nor "
            f"the ignore value {ignore_index}", in_prediction=False,
        )


def per_class_iou(confusion: np.ndarray) -> np.ndarray:
    """IoU per class in [0, 1]; NaN where TP + FP + FN = 0 (a class predicted but absent has IoU 0)."""
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def gt_present(confusion: np.ndarray) -> np.ndarray:
    """Boolean mask of classes with ground-truth pixels."""
    return confusion.sum(1) > 0


def miou_classes(confusion: np.ndarray, miou_mode: MiouMode = "present") -> np.ndarray:
    """Boolean mask of the classes an mIoU averages over: GT_c > 0 (`present`) or GT_c + PRED_c > 0 (`legacy`).

    With IoU taken as 0 for a class predicted but absent, the legacy mIoU is the plain mean of IoU over this
    mask, so subsets of classes (a stream step's classes) use the same rule.
    """
    if miou_mode == "present":
        return gt_present(confusion)
    if miou_mode == "legacy":
        return (confusion.sum(1) + confusion.sum(0)) > 0
    raise ValueError(f"miou_mode must be one of {MIOU_MODES}, got {miou_mode!r}")


def mean_iou(confusion: np.ndarray, classes: np.ndarray | list[int] | None = None,
             miou_mode: MiouMode = "present") -> float:
    """mIoU in percent over `classes` (all when None) by `miou_mode`; NaN when no class qualifies."""
    iou = np.nan_to_num(per_class_iou(confusion), nan=0.0)
    scored = miou_classes(confusion, miou_mode)
    if classes is not None:
        scored = scored & np.isin(np.arange(len(scored)), np.asarray(classes, dtype=np.int64))
    return float(100 * iou[scored].mean()) if scored.any() else float("nan")


def semantic_metrics(confusion: np.ndarray, miou_mode: MiouMode = "present") -> dict:
    """miou, per_class_iou (NaN without ground truth), macc, pacc, fwiou in percent (module docstring)."""
    tp = np.diag(confusion).astype(np.float64)
    gt_pixels = confusion.sum(1).astype(np.float64)
    present = gt_pixels > 0
    iou = per_class_iou(confusion)
    iou[~present] = np.nan
    total = gt_pixels.sum()
    nan = float("nan")
    return {
        "miou": mean_iou(confusion, miou_mode=miou_mode),
        "per_class_iou": (100 * iou).tolist(),
        "macc": float(100 * np.mean(tp[present] / gt_pixels[present])) if present.any() else nan,
        "pacc": float(100 * tp.sum() / total) if total else nan,
        "fwiou": float(100 * np.sum(iou[present] * gt_pixels[present] / total)) if total else nan,
    }


class SemanticEvaluator:
    """reset / process / evaluate; the state is one confusion matrix, so shards sum exactly."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_LABEL, miou_mode: MiouMode = "present") -> None:
        if miou_mode not in MIOU_MODES:
            raise ValueError(f"miou_mode must be one of {MIOU_MODES}, got {miou_mode!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.miou_mode = miou_mode
        self.reset()

    def reset(self) -> None:
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def process(self, pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> None:
        """Add one prediction (or a batch of any shape) against its ground truth of the same shape."""
        add_confusion(self.confusion, pred, gt, self.ignore_index)

    def evaluate(self) -> dict:
        return semantic_metrics(self.confusion, self.miou_mode)
