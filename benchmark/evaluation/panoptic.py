"""Panoptic quality (PQ, SQ, RQ) with panopticapi's `pq_compute` rules, vectorised, on in-memory maps.

Per image (panopticapi `pq_compute_single_core`), with segment id 0 = VOID in both maps:
- a ground-truth segment g and a predicted segment p of the same category match when IoU > 0.5, where
  IoU = |g ∩ p| / (|p| + |g| - |g ∩ p| - |p ∩ VOID|): VOID pixels are removed from the union. IoU > 0.5
  makes matches unique, so no assignment step is needed.
- crowd ground-truth segments are never matched and never false negatives; other unmatched ground-truth
  segments are FN (those listed without pixels too).
- an unmatched prediction is a FP unless more than half of its pixels lie in VOID or in the crowd segment
  of its category (the last crowd segment of that category in the list, as panopticapi's dict keeps it).
- ground-truth pixels whose id is not listed are neither VOID nor a segment: they only enlarge unions.
Per category c: PQ_c = sum IoU / (TP + FP/2 + FN/2), SQ_c = sum IoU / TP (0 without TP),
RQ_c = TP / (TP + FP/2 + FN/2). All / Things / Stuff average PQ_c, SQ_c, RQ_c over the categories of the
group with TP + FP + FN > 0 (n of them).

Differences from panopticapi, all outside its valid inputs or below 1e-12: areas are counted from the maps
(panopticapi takes ground-truth areas from the JSON, which for COCO are the same counts); a listed predicted
segment without pixels is skipped (panopticapi refuses it); a group with n = 0 gives NaN (panopticapi divides
by zero). Sums of IoU are kept in fixed point (integers in units of 2^-40, error < 2^-41 per match, overflow
after 2^23 matches of one class) so that shards add up to the single-process state bit for bit.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from benchmark.data.types import SegmentInfo

IOU_SCALE = 2.0**40  # fixed-point unit of the IoU sums
VOID = 0


def pair_areas(gt_pan: np.ndarray, pred_pan: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (gt id, pred id) pair that overlaps, with its pixel count: the joint histogram of the two maps.

    Panoptic maps are piecewise constant, so the joint ids are run-length encoded first (one comparison pass)
    and only the runs are sorted; a map of pure noise degrades to sorting every pixel, as panopticapi does.
    """
    gt, pred = gt_pan.reshape(-1).astype(np.int64, copy=False), pred_pan.reshape(-1).astype(np.int64, copy=False)
    if gt.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    offset = int(pred.max()) + 1
    if min(gt.min(), pred.min()) < 0 or int(gt.max()) >= np.iinfo(np.int64).max // offset:
        raise ValueError("panoptic segment ids must be non-negative and below 2^31")
    joint = gt * offset + pred  # (N,)
    run_starts = np.flatnonzero(np.concatenate(([True], joint[1:] != joint[:-1])))  # (R,)
    run_lengths = np.diff(np.append(run_starts, joint.size))  # (R,)
    run_keys = joint[run_starts]
    order = np.argsort(run_keys, kind="stable")
    sorted_keys = run_keys[order]
    firsts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))  # (P,)
    counts = np.add.reduceat(run_lengths[order], firsts)
    keys = sorted_keys[firsts]
    return keys // offset, keys % offset, counts


def _segment_table(segments: Sequence[SegmentInfo], num_classes: int, which: str
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.array([s.id for s in segments], dtype=np.int64)
    categories = np.array([s.category_id for s in segments], dtype=np.int64)
    crowd = np.array([bool(s.iscrowd) for s in segments], dtype=bool)
    unique, counts = np.unique(ids, return_counts=True)
    if unique.size != ids.size:
        raise ValueError(f"{which} segments list segment id {unique[counts > 1][0]} twice")
    if (ids == VOID).any():
        raise ValueError(f"{which} segments use id {VOID}, which means VOID")
    bad = (categories < 0) | (categories >= num_classes)
    if bad.any():
        raise ValueError(f"{which} segment {ids[bad][0]} has category {categories[bad][0]} outside 0..{num_classes - 1}")
    return ids, categories, crowd


def _lookup(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position of each value in `ids`, -1 where absent."""
    if ids.size == 0:
        return np.full(values.shape, -1, dtype=np.int64)
    order = np.argsort(ids)
    pos = np.clip(np.searchsorted(ids[order], values), 0, ids.size - 1)
    found = ids[order][pos] == values
    return np.where(found, order[pos], -1)


def image_pq_stats(pred_pan: np.ndarray, pred_segments: Sequence[SegmentInfo], gt_pan: np.ndarray,
                   gt_segments: Sequence[SegmentInfo], num_classes: int, require_pixels: bool = False
                   ) -> dict[str, np.ndarray]:
    """Per-category tp, fp, fn (int64) and fixed-point iou_sum (int64) of one image (rules: module docstring).

    `require_pixels` refuses a listed predicted segment without pixels, as panopticapi does for files."""
    if pred_pan.shape != gt_pan.shape:
        raise ValueError(f"prediction map has shape {pred_pan.shape} but ground truth has {gt_pan.shape}")
    gt_ids, gt_cat, gt_crowd = _segment_table(gt_segments, num_classes, "ground-truth")
    pred_ids, pred_cat, _ = _segment_table(pred_segments, num_classes, "predicted")
    pair_gt, pair_pred, inter = pair_areas(gt_pan, pred_pan)  # (P,) each
    gi, pi = _lookup(gt_ids, pair_gt), _lookup(pred_ids, pair_pred)  # (P,) segment index or -1
    unlisted = (pi < 0) & (pair_pred != VOID)
    if unlisted.any():
        raise ValueError(f"segment id {pair_pred[unlisted][0]} is in the prediction map but not in its segments")

    has_pred, has_gt = pi >= 0, gi >= 0
    pred_area = np.bincount(pi[has_pred], weights=inter[has_pred], minlength=pred_ids.size).astype(np.int64)
    gt_area = np.bincount(gi[has_gt], weights=inter[has_gt], minlength=gt_ids.size).astype(np.int64)
    if require_pixels and (pred_area == 0).any():
        raise ValueError(f"segment id {pred_ids[pred_area == 0][0]} is in the prediction's segments but not in its map")
    on_void = has_pred & (pair_gt == VOID)
    void_area = np.bincount(pi[on_void], weights=inter[on_void], minlength=pred_ids.size).astype(np.int64)

    candidate = has_pred & has_gt
    candidate[candidate] = ~gt_crowd[gi[candidate]] & (gt_cat[gi[candidate]] == pred_cat[pi[candidate]])
    g, p, overlap = gi[candidate], pi[candidate], inter[candidate]
    iou = overlap / (pred_area[p] + gt_area[g] - overlap - void_area[p])
    match = iou > 0.5
    g, p, iou = g[match], p[match], iou[match]

    stats = {name: np.zeros(num_classes, dtype=np.int64) for name in ("tp", "fp", "fn", "iou_sum")}
    np.add.at(stats["tp"], gt_cat[g], 1)
    np.add.at(stats["iou_sum"], gt_cat[g], np.rint(iou * IOU_SCALE).astype(np.int64))

    gt_matched = np.zeros(gt_ids.size, dtype=bool)
    gt_matched[g] = True
    missed = ~gt_matched & ~gt_crowd
    np.add.at(stats["fn"], gt_cat[missed], 1)

    crowd_of_category = np.full(num_classes, -1, dtype=np.int64)
    crowd_index = np.flatnonzero(gt_crowd)
    crowd_of_category[gt_cat[crowd_index]] = crowd_index  # repeated categories: the last assignment wins
    on_crowd = has_pred & has_gt
    on_crowd[on_crowd] = gi[on_crowd] == crowd_of_category[pred_cat[pi[on_crowd]]]
    crowd_area = np.bincount(pi[on_crowd], weights=inter[on_crowd], minlength=pred_ids.size).astype(np.int64)

    pred_matched = np.zeros(pred_ids.size, dtype=bool)
    pred_matched[p] = True
    unmatched = ~pred_matched & (pred_area > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mostly_ignored = (void_area + crowd_area) / pred_area > 0.5
    np.add.at(stats["fp"], pred_cat[unmatched & ~mostly_ignored], 1)
    return stats


def per_class_pq(stats: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(PQ, SQ, RQ, counted) per category as fractions; counted = TP + FP + FN > 0, zeros where not counted."""
    tp, fp, fn = (np.asarray(stats[k], dtype=np.float64) for k in ("tp", "fp", "fn"))
    iou_sum = np.asarray(stats["iou_sum"], dtype=np.float64) / IOU_SCALE
    counted = (tp + fp + fn) > 0
    denominator = np.where(counted, tp + 0.5 * fp + 0.5 * fn, 1.0)
    pq = np.where(counted, iou_sum / denominator, 0.0)
    sq = np.where(tp > 0, iou_sum / np.maximum(tp, 1.0), 0.0)
    rq = np.where(counted, tp / denominator, 0.0)
    return pq, sq, rq, counted


def panoptic_metrics(stats: dict[str, np.ndarray], isthing: Sequence[bool]) -> dict:
    """panopticapi's result structure: All / Things / Stuff each {pq, sq, rq, n} and per_class {id: {pq, sq,
    rq}}, as fractions (per_class keyed by contiguous category id)."""
    pq, sq, rq, counted = per_class_pq(stats)
    things = np.asarray(isthing, dtype=bool)
    results: dict = {}
    for name, members in (("All", np.ones_like(things)), ("Things", things), ("Stuff", ~things)):
        chosen = members & counted
        n = int(chosen.sum())
        mean = (lambda values: float(values[chosen].mean())) if n else (lambda values: float("nan"))
        results[name] = {"pq": mean(pq), "sq": mean(sq), "rq": mean(rq), "n": n}
    results["per_class"] = {c: {"pq": float(pq[c]), "sq": float(sq[c]), "rq": float(rq[c])} for c in range(len(pq))}
    return results


class PanopticEvaluator:
    """reset / process / evaluate; the state is four int64 arrays per category, so shards sum exactly.

    `isthing[c]` says whether contiguous category c is a thing (it only splits Things / Stuff)."""

    def __init__(self, isthing: Sequence[bool]) -> None:
        self.isthing = [bool(t) for t in isthing]
        self.num_classes = len(self.isthing)
        self.reset()

    def reset(self) -> None:
        self.stats = {name: np.zeros(self.num_classes, dtype=np.int64) for name in ("tp", "fp", "fn", "iou_sum")}

    def process(self, pred_pan: np.ndarray, pred_segments: Sequence[SegmentInfo], gt_pan: np.ndarray,
                gt_segments: Sequence[SegmentInfo], require_pixels: bool = False) -> None:
        """Add one image: (H, W) segment-id maps (0 = VOID) with their segment lists (contiguous category ids)."""
        image = image_pq_stats(pred_pan, pred_segments, gt_pan, gt_segments, self.num_classes, require_pixels)
        for name, values in image.items():
            self.stats[name] += values

    def evaluate(self) -> dict:
        return panoptic_metrics(self.stats, self.isthing)
