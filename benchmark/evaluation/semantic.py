"""Semantic segmentation evaluator: one int64 confusion matrix, additive across images and shards.

Definitions (detectron2 `SemSegEvaluator`):
- confusion[g, p] counts pixels with ground truth g predicted as p; pixels whose ground truth is the ignore
  value are excluded.
- per-class IoU_c = TP_c / (TP_c + FP_c + FN_c), TP_c = confusion[c, c], FP_c = column sum - TP_c,
  FN_c = row sum - TP_c.
- mIoU (`miou_mode="present"`, detectron2 since 2022): mean of IoU_c over classes with ground-truth pixels.
"""
from __future__ import annotations

import numpy as np
import torch

from benchmark.data.types import IGNORE_LABEL


def confusion_matrix(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_LABEL) -> np.ndarray:
    """(K, K) int64 confusion matrix of one prediction; rows are ground truth, columns predictions."""
    pred = torch.as_tensor(pred).reshape(-1).long()
    gt = torch.as_tensor(gt).reshape(-1).long()
    keep = gt != ignore_index
    pred, gt = pred[keep], gt[keep]
    if pred.numel() and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"prediction holds class ids outside 0..{num_classes - 1}")
    counts = torch.bincount(gt * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).numpy().astype(np.int64)


def per_class_iou(confusion: np.ndarray) -> np.ndarray:
    """IoU per class in [0, 1]; NaN where TP + FP + FN = 0."""
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def gt_present(confusion: np.ndarray) -> np.ndarray:
    """Boolean mask of classes with ground-truth pixels."""
    return confusion.sum(1) > 0


class SemanticEvaluator:
    """reset / process / evaluate; the state is one confusion matrix, so shards sum exactly."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_LABEL) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def process(self, pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> None:
        self.confusion += confusion_matrix(pred, gt, self.num_classes, self.ignore_index)

    def evaluate(self) -> dict:
        iou = per_class_iou(self.confusion)
        present = gt_present(self.confusion)
        miou = float(np.nanmean(iou[present])) if present.any() else float("nan")
        return {"miou": 100 * miou, "per_class_iou": (100 * iou).tolist()}
