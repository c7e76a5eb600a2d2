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
