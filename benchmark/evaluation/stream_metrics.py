"""Stream metrics from the per-step matrix R (scores in percent).

R[t][j] = mean score over the classes of step j (C_j) present in validation, after learning step t. Entries
with j > t exist for open-vocabulary methods evaluated with the full vocabulary (forward transfer); they
are NaN otherwise. T denotes the last step index.

- final: score on S_T (all classes seen by the end).
- avg_incremental: mean over t of the score on S_t.
- forgetting_max (Chaudhry et al.): mean over j < T of max_{l in [j, T-1]} R[l][j] - R[T][j].
- forgetting_first (Avalanche): mean over j < T of R[j][j] - R[T][j].
- bwt: mean over j < T of R[T][j] - R[j][j].
"""
from __future__ import annotations

import numpy as np


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def forgetting_max(R: np.ndarray) -> float:
    T = R.shape[0] - 1
    return _nanmean([np.nanmax(R[j:T, j]) - R[T, j] for j in range(T)]) if T > 0 else float("nan")


def forgetting_first(R: np.ndarray) -> float:
    T = R.shape[0] - 1
    return _nanmean([R[j, j] - R[T, j] for j in range(T)]) if T > 0 else float("nan")


def backward_transfer(R: np.ndarray) -> float:
    T = R.shape[0] - 1
    return _nanmean([R[T, j] - R[j, j] for j in range(T)]) if T > 0 else float("nan")


def stream_summary(R: np.ndarray, seen_scores: list[float]) -> dict[str, float]:
    """`seen_scores[t]` is the score on S_t after step t (its last entry is `final`)."""
    R = np.asarray(R, dtype=np.float64)
    return {
        "final": float(seen_scores[-1]),
        "avg_incremental": _nanmean(list(seen_scores)),
        "forgetting_max": forgetting_max(R),
        "forgetting_first": forgetting_first(R),
        "bwt": backward_transfer(R),
    }


def semantic_stream_results(confusions: list[np.ndarray], step_classes: list[list[int]]) -> dict:
    """Matrix and summary of a semantic stream from its raw per-step confusion matrices.

    `confusions[t]` is the (K, K) confusion matrix accumulated after learning step t; `step_classes[j]` is
    C_j. R[t][j] averages IoU over the classes of C_j with ground-truth pixels at step t (NaN when none, e.g.
    j > t under the seen-vocabulary validation policy, which ignores classes not yet seen).
    """
    from benchmark.evaluation.semantic import gt_present, per_class_iou

    num_steps = len(step_classes)
    R = np.full((len(confusions), num_steps), np.nan)
    seen_scores = []
    for t, confusion in enumerate(confusions):
        iou, present = 100 * per_class_iou(confusion), gt_present(confusion)
        for j, classes in enumerate(step_classes):
            scored = [c for c in classes if present[c]]
            if scored:
                R[t, j] = float(np.mean(iou[scored]))
        seen = [c for classes in step_classes[: t + 1] for c in classes if present[c]]
        seen_scores.append(float(np.mean(iou[seen])) if seen else float("nan"))
    return {"matrix": R, "seen": seen_scores, "summary": stream_summary(R, seen_scores)}
