"""Ports of the reference implementations the evaluators are checked and timed against: detectron2's
`SemSegEvaluator` (confusion matrix per image, mIoU of v0.6 and of 2022) and panopticapi's `pq_compute`
(`pq_compute_single_core` per image, `PQStat.pq_average`; panopticapi is not on PyPI). The tests compare
benchmark.evaluation with these; `python -m benchmark perf eval` times both (benchmark/perf/eval.py).
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from benchmark.data.types import IGNORE_LABEL, SegmentInfo

PANOPTICAPI_OFFSET = 256 * 256 * 256


def detectron2_confusion(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_label: int = IGNORE_LABEL
                         ) -> np.ndarray:
    """detectron2 `SemSegEvaluator.process` for one image: (K+1, K+1) matrix indexed [pred, gt], the ignore
    label moved to row/column K."""
    gt = np.array(gt, dtype=int)
    gt[gt == ignore_label] = num_classes
    return np.bincount(
        (num_classes + 1) * np.asarray(pred).reshape(-1) + gt.reshape(-1), minlength=(num_classes + 1) ** 2
    ).reshape(num_classes + 1, num_classes + 1)


def detectron2_semseg_metrics(conf_matrix: np.ndarray, version: str) -> dict:
    """detectron2 `SemSegEvaluator.evaluate` on a [pred, gt] matrix: `v0.6` (legacy mIoU) or `current`."""
    num_classes = conf_matrix.shape[0] - 1
    acc = np.full(num_classes, np.nan)
    iou = np.full(num_classes, np.nan)
    tp = conf_matrix.diagonal()[:-1].astype(np.float64)
    pos_gt = np.sum(conf_matrix[:-1, :-1], axis=0).astype(np.float64)
    class_weights = pos_gt / np.sum(pos_gt)
    pos_pred = np.sum(conf_matrix[:-1, :-1], axis=1).astype(np.float64)
    acc_valid = pos_gt > 0
    acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]
    union = pos_gt + pos_pred - tp
    if version == "v0.6":
        iou_valid = (pos_gt + pos_pred) > 0
        iou[acc_valid] = tp[acc_valid] / union[acc_valid]
        miou = np.sum(iou[acc_valid]) / np.sum(iou_valid)
        fiou = np.sum(iou[acc_valid] * class_weights[acc_valid])
    elif version == "current":
        iou_valid = np.logical_and(acc_valid, union > 0)
        iou[iou_valid] = tp[iou_valid] / union[iou_valid]
        miou = np.sum(iou[iou_valid]) / np.sum(iou_valid)
        fiou = np.sum(iou[iou_valid] * class_weights[iou_valid])
    else:
        raise ValueError(f"unknown detectron2 version {version!r}")
    return {
        "miou": 100 * miou,
        "per_class_iou": 100 * iou,
        "macc": 100 * np.sum(acc[acc_valid]) / np.sum(acc_valid),
        "pacc": 100 * np.sum(tp) / np.sum(pos_gt),
        "fwiou": 100 * fiou,
    }


def panopticapi_image_stats(pan_gt: np.ndarray, gt_segms: dict, pan_pred: np.ndarray, pred_segms: dict,
                            categories: dict) -> dict:
    """panopticapi's `pq_compute_single_core` body for one image, as a per-category {tp, fp, fn, iou} dict.

    `gt_segms` / `pred_segms` map segment id -> {"category_id", "iscrowd", "area"} (ground-truth areas as
    the JSON gives them; predicted areas are recounted from the map, as panopticapi does); both maps use
    id 0 for VOID. Raises KeyError on the inconsistencies panopticapi refuses.
    """
    stats: dict = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0, "iou": 0.0})
    pred_segms = {k: dict(v) for k, v in pred_segms.items()}
    pred_labels_set = set(pred_segms)
    labels, labels_cnt = np.unique(pan_pred, return_counts=True)
    for label, label_cnt in zip(labels, labels_cnt):
        if label not in pred_segms:
            if label == 0:
                continue
            raise KeyError(f"segment {label} in PNG but not in JSON")
        pred_segms[label]["area"] = label_cnt
        pred_labels_set.remove(label)
        if pred_segms[label]["category_id"] not in categories:
            raise KeyError(f"segment {label} has unknown category_id {pred_segms[label]['category_id']}")
    if pred_labels_set:
        raise KeyError(f"segments {sorted(pred_labels_set)} in JSON but not in PNG")

    pan_gt_pred = pan_gt.astype(np.uint64) * PANOPTICAPI_OFFSET + pan_pred.astype(np.uint64)
    gt_pred_map = {}
    labels, labels_cnt = np.unique(pan_gt_pred, return_counts=True)
    for label, intersection in zip(labels, labels_cnt):
        gt_pred_map[(label // PANOPTICAPI_OFFSET, label % PANOPTICAPI_OFFSET)] = intersection

    gt_matched, pred_matched = set(), set()
    for (gt_label, pred_label), intersection in gt_pred_map.items():
        if gt_label not in gt_segms or pred_label not in pred_segms:
            continue
        if gt_segms[gt_label]["iscrowd"] == 1:
            continue
        if gt_segms[gt_label]["category_id"] != pred_segms[pred_label]["category_id"]:
            continue
        union = (pred_segms[pred_label]["area"] + gt_segms[gt_label]["area"] - intersection
                 - gt_pred_map.get((0, pred_label), 0))
        iou = intersection / union
        if iou > 0.5:
            stats[gt_segms[gt_label]["category_id"]]["tp"] += 1
            stats[gt_segms[gt_label]["category_id"]]["iou"] += iou
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)

    crowd_labels_dict = {}
    for gt_label, gt_info in gt_segms.items():
        if gt_label in gt_matched:
            continue
        if gt_info["iscrowd"] == 1:
            crowd_labels_dict[gt_info["category_id"]] = gt_label
            continue
        stats[gt_info["category_id"]]["fn"] += 1

    for pred_label, pred_info in pred_segms.items():
        if pred_label in pred_matched:
            continue
        intersection = gt_pred_map.get((0, pred_label), 0)
        if pred_info["category_id"] in crowd_labels_dict:
            intersection += gt_pred_map.get((crowd_labels_dict[pred_info["category_id"]], pred_label), 0)
        if intersection / pred_info["area"] > 0.5:
            continue
        stats[pred_info["category_id"]]["fp"] += 1
    return stats


def panopticapi_pq_average(stats: dict, categories: dict) -> dict:
    """panopticapi `PQStat.pq_average` for All / Things / Stuff plus per_class (fractions); n = 0 gives NaN."""
    results: dict = {}
    for name, isthing in (("All", None), ("Things", True), ("Stuff", False)):
        pq = sq = rq = 0.0
        n = 0
        per_class = {}
        for label, info in categories.items():
            if isthing is not None and (info["isthing"] == 1) != isthing:
                continue
            s = stats.get(label, {"tp": 0, "fp": 0, "fn": 0, "iou": 0.0})
            tp, fp, fn, iou = s["tp"], s["fp"], s["fn"], s["iou"]
            if tp + fp + fn == 0:
                per_class[label] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
                continue
            n += 1
            pq_class = iou / (tp + 0.5 * fp + 0.5 * fn)
            sq_class = iou / tp if tp != 0 else 0
            rq_class = tp / (tp + 0.5 * fp + 0.5 * fn)
            per_class[label] = {"pq": pq_class, "sq": sq_class, "rq": rq_class}
            pq, sq, rq = pq + pq_class, sq + sq_class, rq + rq_class
        results[name] = {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n} if n else \
            {"pq": float("nan"), "sq": float("nan"), "rq": float("nan"), "n": 0}
        if name == "All":
            results["per_class"] = per_class
    return results


def _panopticapi_rgb2id(color: np.ndarray) -> np.ndarray:
    color = color.astype(np.int32)
    return color[:, :, 0] + 256 * color[:, :, 1] + 256 * 256 * color[:, :, 2]


def panopticapi_pq_compute(gt_json_file: Path, pred_json_file: Path, gt_folder: Path, pred_folder: Path) -> dict:
    """panopticapi's `pq_compute` on a single core: read both JSONs, decode every PNG pair, accumulate."""
    gt_json = json.loads(Path(gt_json_file).read_text())
    pred_json = json.loads(Path(pred_json_file).read_text())
    categories = {c["id"]: c for c in gt_json["categories"]}
    pred_annotations = {a["image_id"]: a for a in pred_json["annotations"]}
    total: dict = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0, "iou": 0.0})
    for gt_ann in gt_json["annotations"]:
        pred_ann = pred_annotations[gt_ann["image_id"]]
        pan_gt = _panopticapi_rgb2id(np.array(Image.open(Path(gt_folder) / gt_ann["file_name"]), dtype=np.uint32))
        pan_pred = _panopticapi_rgb2id(np.array(Image.open(Path(pred_folder) / pred_ann["file_name"]),
                                                dtype=np.uint32))
        gt_segms = {s["id"]: s for s in gt_ann["segments_info"]}
        pred_segms = {s["id"]: s for s in pred_ann["segments_info"]}
        for label, s in panopticapi_image_stats(pan_gt, gt_segms, pan_pred, pred_segms, categories).items():
            for key in ("tp", "fp", "fn", "iou"):
                total[label][key] += s[key]
    return panopticapi_pq_average(total, categories)


def panoptic_as_panopticapi(segments: Sequence[SegmentInfo], pan: np.ndarray | None = None) -> dict:
    """SegmentInfo list -> panopticapi's {id: {category_id, iscrowd, area}} (areas counted from `pan`)."""
    areas = dict(zip(*np.unique(pan, return_counts=True))) if pan is not None else {}
    return {s.id: {"category_id": s.category_id, "iscrowd": int(s.iscrowd), "area": int(areas.get(s.id, s.area))}
            for s in segments}
