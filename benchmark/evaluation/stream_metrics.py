"""Stream metrics from the per-step matrix R (scores in percent), recomputed from raw per-step statistics.

R[t][j] = mean score over the classes of step j (C_j) present in validation, after learning step t. Entries
with j > t exist for open-vocabulary methods evaluated with the full vocabulary (forward transfer); they
are NaN otherwise. T denotes the last step index; S_t = C_0 ∪ … ∪ C_t.

- final: score on S_T (all classes seen by the end).
- avg_incremental: mean over t of the score on S_t.
- forgetting_max (Chaudhry et al.): mean over j < T of max_{l in [j, T-1]} R[l][j] - R[T][j].
- forgetting_first (Avalanche): mean over j < T of R[j][j] - R[T][j].
- bwt: mean over j < T of R[T][j] - R[j][j].
- R[-1][j] (the initial row): the score on C_j of the untouched method, evaluated with every class before
  learning step 0 (`eval.initial`); for an open-vocabulary method, its zero-shot score.
- forward_transfer (Avalanche `ForwardTransfer`: previous - initial): mean over j in [1, T] of
  R[j-1][j] - R[-1][j], what learning steps 0..j-1 did for C_j before C_j is learned; NaN without the initial
  row or unless the run scored classes not yet learned (eval.vocabulary=all).
- forward_transfer_gem (GEM `metrics/metrics.py`, `fwt[t] = result[t-1, t] - baseline[t]`, `fwt.mean()`): with a
  baseline row b (GEM: the model at random initialisation; here another run's initial row), fwt[0] = 0 and
  fwt[j] = R[j-1][j] - b[j] for j in [1, T], averaged over all T + 1 entries as GEM's code does (its paper
  divides by T instead: T / (T + 1) times this).
- learning_gain[j] = R[T][j] - R[-1][j], per class group: what the whole stream did for C_j against the
  untouched method; `learning_gain` is its mean over j in [0, T]. Zero-shot's is 0 whenever the last step's
  vocabulary is every class.
- excess forgetting: a method's forgetting_max minus zero-shot's forgetting_max on the same stream, model and
  seed; the part of the forgetting not explained by the vocabulary's growth (old classes lose IoU to new
  classes' names even when nothing is learned). Computed by the leaderboard, which has both runs.
- after the last step T, class means over the union (like final), not means of R entries:
  previous / last: score on S_{T-1} (the classes before the last step) / on C_T (the last step's classes);
  base / novel: score on C_0 / on C_1 ∪ … ∪ C_T;
  old / new: MiB's and PLOP's convention, the same numbers as base / novel (their tables: classes 1-100 / 101-150
  on ADE 100-50; PLOP's average_csv.py:21-32 averages the classes of step 0 and the later ones). ECLIPSE's
  evaluator names previous / last mIoU_old / mIoU_new (continual/evaluation/continual_evaluation.py:155-158).

Every metric above but forward_transfer_gem and excess forgetting is an entry of STREAM_METRICS, in this order:
`register_stream_metric(name, fn, *, higher_is_better, label)` with `fn(matrix, initial) -> float` adds one,
and it flows by itself into summary.json (`metrics.<score>.<name>`), `benchmark.results.load` and the
leaderboard's tables (Markdown, CSV, HTML, LaTeX, terminal). A module on COVSEG_PATH may register one.

A "score on a set of classes" is always the mean of the per-class scores of the classes in the set that are
scored at that step (semantic: IoU over classes with ground truth, or the legacy rule; panoptic: PQ over
classes with TP + FP + FN > 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from benchmark.registry import Registry


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


def forward_transfer(R: np.ndarray, initial: np.ndarray | None) -> float:
    """Avalanche: mean over j in [1, T] of R[j-1][j] - R[-1][j] (`initial` is R[-1])."""
    T = min(R.shape[0], R.shape[1]) - 1
    if initial is None or T <= 0:
        return float("nan")
    return _nanmean([R[j - 1, j] - initial[j] for j in range(1, T + 1)])


def forward_transfer_gem(R: np.ndarray, baseline: np.ndarray) -> float:
    """GEM's code: mean over j in [0, T] of fwt[j], fwt[0] = 0, fwt[j] = R[j-1][j] - baseline[j]; NaN when some
    fwt[j] is undefined (GEM scores every task at every step)."""
    T = min(R.shape[0], R.shape[1]) - 1
    if T <= 0:
        return float("nan")
    return float(np.mean([0.0] + [R[j - 1, j] - baseline[j] for j in range(1, T + 1)]))


def learning_gain(R: np.ndarray, initial: np.ndarray | None) -> list[float]:
    """R[T][j] - R[-1][j] for every class group j (NaN without the initial row)."""
    if initial is None:
        return [float("nan")] * R.shape[1]
    return [float(R[-1, j] - initial[j]) for j in range(R.shape[1])]


def excess_forgetting(R: np.ndarray, R_zero_shot: np.ndarray) -> float:
    """forgetting_max(R) - forgetting_max(R_zero_shot): forgetting beyond the vocabulary's growth. The matrices
    may come from summary.json (None for NaN)."""
    return forgetting_max(np.asarray(R, dtype=np.float64)) - forgetting_max(np.asarray(R_zero_shot, dtype=np.float64))


@dataclass(frozen=True)
class StreamScores:
    """What a stream metric is computed from, for one score (mIoU or PQ), in percent."""

    matrix: np.ndarray  # R[t][j], (steps, step groups)
    initial: np.ndarray | None  # R[-1][j], (step groups,); None without the initial evaluation
    seen: list[float]  # score on S_t after step t
    last_scores: np.ndarray  # (K,) per-class scores after the last evaluated step
    last_scored: np.ndarray  # (K,) which classes count there
    step_classes: list[list[int]]  # C_j of the evaluated steps; the last one is taken as step T

    def class_mean(self, steps: list[list[int]]) -> float:
        """The last step's score on the union of `steps`' classes."""
        chosen = [c for classes in steps for c in classes if self.last_scored[c]]
        return float(np.mean(self.last_scores[chosen])) if chosen else float("nan")


@dataclass(frozen=True)
class StreamMetric:
    """One registered stream metric: summary.json's `metrics.<score>.<name>`, a leaderboard column."""

    name: str
    compute: Callable[[StreamScores], float]
    higher_is_better: bool
    label: str  # column title; `{score}` in it becomes mIoU or PQ
    scores: tuple[str, ...] = ("miou",)  # the scores whose value gets a leaderboard column; (): summary only
    needs_initial: bool = False  # leaderboard rows average it over the runs with the initial evaluation
    versus_zero_shot: str | None = None  # also a column `<this name>`: the value minus the paired zero-shot run's
    description: str | None = None  # what it is, in LEADERBOARD.md's legend (`label = description`)
    figure: str | None = None  # also a bar chart per variant, with this axis text


SCORE_LABELS = {"miou": "mIoU", "pq": "PQ"}
STREAM_METRICS: Registry[StreamMetric] = Registry("stream metric")


def register_stream_metric(name: str, fn: Callable[[np.ndarray, np.ndarray | None], float], *,
                           higher_is_better: bool, label: str, scores: tuple[str, ...] = ("miou",),
                           needs_initial: bool = False, versus_zero_shot: str | None = None,
                           description: str | None = None, figure: str | None = None) -> StreamMetric:
    """Register `fn(matrix, initial) -> float` (R[t][j] in percent, the initial row R[-1] or None) under `name`:
    every run's summary.json gets `metrics.<score>.<name>` and the leaderboard a column titled `label`. The other
    keywords are StreamMetric's fields."""
    return register_stream_score(name, lambda stream: fn(stream.matrix, stream.initial),
                                 higher_is_better=higher_is_better, label=label, scores=scores,
                                 needs_initial=needs_initial, versus_zero_shot=versus_zero_shot,
                                 description=description, figure=figure)


def register_stream_score(name: str, compute: Callable[[StreamScores], float], *, higher_is_better: bool,
                          label: str, **fields) -> StreamMetric:
    """Register a metric that needs more than R, `compute(StreamScores) -> float` (e.g. per-class scores);
    `fields`: the other StreamMetric fields, as register_stream_metric takes them."""
    return STREAM_METRICS.register(name, StreamMetric(name, compute, higher_is_better, label, **fields))


def stream_metrics() -> list[StreamMetric]:
    """Every registered stream metric, in registration order (the order of summary.json and of the columns)."""
    return STREAM_METRICS.entries()


# values of stream metrics computed elsewhere, from the same scores (benchmark.hosts: the method's worker)
MoreMetrics = Callable[[StreamScores], dict[str, float]]


def stream_metric_values(scores: StreamScores, more_metrics: MoreMetrics | None = None) -> dict[str, float]:
    """{name: value} of every registered stream metric, then of those `more_metrics(scores)` adds: the metrics
    registered only where the method runs (its worker under isolate=true: `MethodHost.stream_metrics`)."""
    values = {metric.name: float(metric.compute(scores)) for metric in stream_metrics()}
    more = more_metrics(scores) if more_metrics is not None else {}
    return {**values, **{name: value for name, value in more.items() if name not in values}}


def _flatten(steps: list[list[int]]) -> list[int]:
    return [c for classes in steps for c in classes]


register_stream_score("final", lambda s: float(s.seen[-1]), higher_is_better=True, label="final {score}",
                      scores=("miou", "pq"))
register_stream_score("avg_incremental", lambda s: _nanmean(list(s.seen)), higher_is_better=True,
                      label="avg inc. {score}")
register_stream_metric("forgetting_max", lambda R, _: forgetting_max(R), higher_is_better=False, label="forgetting",
                       versus_zero_shot="excess_forgetting", description="forgetting_max (Chaudhry)",
                       figure="forgetting (max, Chaudhry): mIoU points lost\non earlier steps' classes")
register_stream_metric("forgetting_first", lambda R, _: forgetting_first(R), higher_is_better=False,
                       label="forgetting (first)", scores=())
register_stream_metric("bwt", lambda R, _: backward_transfer(R), higher_is_better=True, label="BWT",
                       description="backward transfer")
register_stream_metric("forward_transfer", forward_transfer, higher_is_better=True, label="FWT", needs_initial=True)
register_stream_metric("learning_gain", lambda R, initial: _nanmean(learning_gain(R, initial)),
                       higher_is_better=True, label="learning gain", needs_initial=True)
# after the last step T: MiB / PLOP's old / new (= base / novel), previous (S_{T-1}), last (C_T)
register_stream_score("old", lambda s: s.class_mean(s.step_classes[:1]), higher_is_better=True, label="old")
register_stream_score("new", lambda s: s.class_mean(s.step_classes[1:]), higher_is_better=True, label="new")
register_stream_score("previous", lambda s: s.class_mean(s.step_classes[:-1]), higher_is_better=True,
                      label="previous")
register_stream_score("last", lambda s: s.class_mean(s.step_classes[-1:]), higher_is_better=True, label="last")
register_stream_score("base", lambda s: s.class_mean(s.step_classes[:1]), higher_is_better=True, label="base",
                      scores=())
register_stream_score("novel", lambda s: s.class_mean(s.step_classes[1:]), higher_is_better=True, label="novel",
                      scores=())


def _class_mean(scores: np.ndarray, scored: np.ndarray, classes: list[int]) -> float:
    chosen = [c for c in classes if scored[c]]
    return float(np.mean(scores[chosen])) if chosen else float("nan")


def _row(scores: np.ndarray, scored: np.ndarray, step_classes: list[list[int]]) -> np.ndarray:
    return np.array([_class_mean(scores, scored, classes) for classes in step_classes])


def stream_results(class_scores: list[np.ndarray], scored: list[np.ndarray], step_classes: list[list[int]],
                   initial: tuple[np.ndarray, np.ndarray] | None = None,
                   more_metrics: MoreMetrics | None = None) -> dict:
    """Matrix R, seen scores and summary from per-step per-class scores of any metric.

    `class_scores[t]` (K,) holds per-class scores in percent after learning step t and `scored[t]` (K,) says
    which classes count at that step; `step_classes[j]` is C_j; `initial` is (scores, scored) of the initial
    evaluation, or None. Returns {"matrix", "initial", "learning_gain", "seen", "summary"} ("initial" is the
    row R[-1] or None); the previous / last / base / novel / old / new splits come from the last evaluated step,
    taken as step T of the stream. With an initial evaluation the summary also has `initial`: its score on every
    class of the stream. `more_metrics`: see stream_metric_values.
    """
    R = np.array([_row(scores, counted, step_classes) for scores, counted in zip(class_scores, scored)])
    seen_scores = []
    for t, (scores, counted) in enumerate(zip(class_scores, scored)):
        seen_scores.append(_class_mean(scores, counted, _flatten(step_classes[: t + 1])))
    initial_row = _row(*initial, step_classes) if initial is not None else None
    summary = stream_metric_values(StreamScores(R, initial_row, seen_scores, class_scores[-1], scored[-1],
                                                step_classes[: len(class_scores)]), more_metrics)
    if initial is not None:
        summary["initial"] = _class_mean(*initial, _flatten(step_classes))
    return {"matrix": R, "initial": initial_row, "learning_gain": learning_gain(R, initial_row), "seen": seen_scores,
            "summary": summary}


def semantic_stream_results(confusions: list[np.ndarray], step_classes: list[list[int]],
                            miou_mode: str = "present", initial_confusion: np.ndarray | None = None,
                            more_metrics: MoreMetrics | None = None) -> dict:
    """Matrix and summary of a semantic stream from its raw per-step confusion matrices.

    `confusions[t]` is the (K, K) confusion matrix accumulated after learning step t; `step_classes[j]` is
    C_j. R[t][j] averages IoU over the classes of C_j with ground-truth pixels at step t (`present`), or over
    those with ground truth or predictions, predicted-but-absent ones counting 0 (`legacy`); NaN when none,
    e.g. j > t under the seen-vocabulary validation policy, which ignores classes not yet seen.
    `initial_confusion` is the initial evaluation's (row -1), or None; `more_metrics`: see stream_metric_values.
    """
    from benchmark.evaluation.semantic import miou_classes, per_class_iou

    def score(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scored = miou_classes(confusion, miou_mode)  # type: ignore[arg-type]
        return 100 * np.nan_to_num(per_class_iou(confusion), nan=0.0), scored

    per_step = [score(confusion) for confusion in confusions]
    initial = score(initial_confusion) if initial_confusion is not None else None
    return stream_results([s for s, _ in per_step], [c for _, c in per_step], step_classes, initial,
                          more_metrics)


def panoptic_stream_results(step_stats: list[dict[str, np.ndarray]], step_classes: list[list[int]],
                            initial_stats: dict[str, np.ndarray] | None = None,
                            more_metrics: MoreMetrics | None = None) -> dict:
    """Matrix and summary of a panoptic stream (PQ) from its raw per-step statistics.

    `step_stats[t]` is `PanopticEvaluator.stats` after learning step t (per-class tp, fp, fn, iou_sum), and
    `initial_stats` the initial evaluation's, or None. R[t][j] averages PQ over the classes of C_j with
    TP + FP + FN > 0 at step t, as panopticapi averages. `more_metrics`: see stream_metric_values.
    """
    from benchmark.evaluation.panoptic import per_class_pq

    def score(stats: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        pq, _, _, counted = per_class_pq(stats)
        return 100 * pq, counted

    per_step = [score(stats) for stats in step_stats]
    initial = score(initial_stats) if initial_stats is not None else None
    return stream_results([s for s, _ in per_step], [c for _, c in per_step], step_classes, initial,
                          more_metrics)
