"""Stream metrics from the per-step matrix R (scores in percent), recomputed from raw per-step statistics.

R[t][j] = mean score over the classes of step j (C_j) present in validation, after learning step t. Entries
with j > t exist for open-vocabulary methods evaluated with the full vocabulary (forward transfer); they
are NaN otherwise. T denotes the last step index; S_t = C_0 ∪ … ∪ C_t.

- final: score on S_T (all classes seen by the end).
- avg_incremental: mean over t of the score on S_t.
- forgetting_max (Chaudhry et al.): mean over j < T of max_{l in [j, T-1]} R[l][j] - R[T][j].
- forgetting_first (Avalanche): mean over j < T of R[j][j] - R[T][j].
- bwt: mean over j < T of R[T][j] - R[j][j].
- forward_transfer: mean over j in [1, T] of R[j-1][j], the score on C_j just before learning it (GEM's FWT
  without its random-model baseline); NaN unless the run scored classes not yet learned.
- old / new: score on S_{T-1} / on C_T after the last step.   base / novel: score on C_0 / on C_1 ∪ … ∪ C_T
  after the last step. These are class means over the union (like final), not means of R entries.

A "score on a set of classes" is always the mean of the per-class scores of the classes in the set that are
scored at that step (semantic: IoU over classes with ground truth, or the legacy rule; panoptic: PQ over
classes with TP + FP + FN > 0).
"""
from __future__ import annotations

import numpy as np


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def forgetting_max(R: np.ndarray) -> float:
    T = R.shape[0] - 1
    return _nanmean([np.nanmax(R[j:T, j]) - R[T, j] if np.isfinite(R[j:T, j]).any() else np.nan for j in range(T)]) \
        if T > 0 else float("nan")


def forgetting_first(R: np.ndarray) -> float:
    T = R.shape[0] - 1
    return _nanmean([R[j, j] - R[T, j] for j in range(T)]) if T > 0 else float("nan")


def backward_transfer(R: np.ndarray) -> float:
    T = R.shape[0] - 1
    return _nanmean([R[T, j] - R[j, j] for j in range(T)]) if T > 0 else float("nan")


def forward_transfer(R: np.ndarray) -> float:
    T = min(R.shape[0], R.shape[1]) - 1
    return _nanmean([R[j - 1, j] for j in range(1, T + 1)]) if T > 0 else float("nan")


def stream_summary(R: np.ndarray, seen_scores: list[float], split_scores: dict[str, float] | None = None
                   ) -> dict[str, float]:
    """`seen_scores[t]` is the score on S_t after step t (its last entry is `final`); `split_scores` holds
    old / new / base / novel when the caller has the per-class scores (see `split_scores`)."""
    R = np.asarray(R, dtype=np.float64)
    summary = {
        "final": float(seen_scores[-1]),
        "avg_incremental": _nanmean(list(seen_scores)),
        "forgetting_max": forgetting_max(R),
        "forgetting_first": forgetting_first(R),
        "bwt": backward_transfer(R),
        "forward_transfer": forward_transfer(R),
    }
    summary.update(split_scores or {})
    return summary


def _class_mean(scores: np.ndarray, scored: np.ndarray, classes: list[int]) -> float:
    chosen = [c for c in classes if scored[c]]
    return float(np.mean(scores[chosen])) if chosen else float("nan")


def split_scores(scores: np.ndarray, scored: np.ndarray, step_classes: list[list[int]]) -> dict[str, float]:
    """old (S_{T-1}), new (C_T), base (C_0), novel (C_1 ∪ … ∪ C_T) from the last step's per-class scores."""
    T = len(step_classes) - 1
    flatten = lambda steps: [c for classes in steps for c in classes]  # noqa: E731
    return {
        "old": _class_mean(scores, scored, flatten(step_classes[:T])),
        "new": _class_mean(scores, scored, step_classes[T]),
        "base": _class_mean(scores, scored, step_classes[0]),
        "novel": _class_mean(scores, scored, flatten(step_classes[1:])),
    }


def stream_results(class_scores: list[np.ndarray], scored: list[np.ndarray], step_classes: list[list[int]]) -> dict:
    """Matrix R, seen scores and summary from per-step per-class scores of any metric.

    `class_scores[t]` (K,) holds per-class scores in percent after learning step t and `scored[t]` (K,) says
    which classes count at that step; `step_classes[j]` is C_j. Returns {"matrix", "seen", "summary"}; the
    old / new / base / novel splits come from the last evaluated step, taken as step T of the stream.
    """
    R = np.full((len(class_scores), len(step_classes)), np.nan)
    seen_scores = []
    for t, (scores, counted) in enumerate(zip(class_scores, scored)):
        for j, classes in enumerate(step_classes):
            R[t, j] = _class_mean(scores, counted, classes)
        seen = [c for classes in step_classes[: t + 1] for c in classes]
        seen_scores.append(_class_mean(scores, counted, seen))
    splits = split_scores(class_scores[-1], scored[-1], step_classes[: len(class_scores)])
    return {"matrix": R, "seen": seen_scores, "summary": stream_summary(R, seen_scores, splits)}


def semantic_stream_results(confusions: list[np.ndarray], step_classes: list[list[int]],
                            miou_mode: str = "present") -> dict:
    """Matrix and summary of a semantic stream from its raw per-step confusion matrices.

    `confusions[t]` is the (K, K) confusion matrix accumulated after learning step t; `step_classes[j]` is
    C_j. R[t][j] averages IoU over the classes of C_j with ground-truth pixels at step t (`present`), or over
    those with ground truth or predictions, predicted-but-absent ones counting 0 (`legacy`); NaN when none,
    e.g. j > t under the seen-vocabulary validation policy, which ignores classes not yet seen.
    """
    from benchmark.evaluation.semantic import miou_classes, per_class_iou

    scores = [100 * np.nan_to_num(per_class_iou(confusion), nan=0.0) for confusion in confusions]
    scored = [miou_classes(confusion, miou_mode) for confusion in confusions]  # type: ignore[arg-type]
    return stream_results(scores, scored, step_classes)


def panoptic_stream_results(step_stats: list[dict[str, np.ndarray]], step_classes: list[list[int]]) -> dict:
    """Matrix and summary of a panoptic stream (PQ) from its raw per-step statistics.

    `step_stats[t]` is `PanopticEvaluator.stats` after learning step t (per-class tp, fp, fn, iou_sum).
    R[t][j] averages PQ over the classes of C_j with TP + FP + FN > 0 at step t, as panopticapi averages.
    """
    from benchmark.evaluation.panoptic import per_class_pq

    scores, scored = [], []
    for stats in step_stats:
        pq, _, _, counted = per_class_pq(stats)
        scores.append(100 * pq)
        scored.append(counted)
    return stream_results(scores, scored, step_classes)
