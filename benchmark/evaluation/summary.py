"""A run's numbers from its raw per-step statistics (benchmark.run.stats): each step's record scores,
summary.json, the matrix CSVs, class_scores.csv, the plots and the printed tables. The runner and
StreamEvaluator write them as a run finishes (`write_run_results`, then RunWriter.finish); `python -m benchmark
report` rewrites them from the same files, so a new metric never needs a rerun."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from benchmark.evaluation.panoptic import per_class_pq
from benchmark.evaluation.semantic import gt_present, mean_iou, per_class_iou
from benchmark.evaluation.stream_metrics import MoreMetrics, panoptic_stream_results, semantic_stream_results
from benchmark.io import atomic_write_json, atomic_write_text, finite
from benchmark.run.plots import write_run_plots
from benchmark.run.stats import load_confusions, load_initial_stats, load_step_records, load_step_stats


def initial_scores(stats: dict[str, np.ndarray], step_classes: Sequence[Sequence[int]], miou_mode: str
                   ) -> dict[str, float]:
    """The initial evaluation's score (stats/initial.json): mIoU over every class of the stream."""
    return {"miou_all": mean_iou(stats["confusion"], [c for classes in step_classes for c in classes], miou_mode)}


def step_scores(stats: dict[str, np.ndarray], seen: Sequence[int], miou_mode: str) -> dict[str, float]:
    """A step record's scores (stats/step_NNN.json): mIoU over the seen classes `seen`, and on panoptic
    statistics PQ over those of them counted (TP + FP + FN > 0)."""
    scores = {"miou_seen": mean_iou(stats["confusion"], list(seen), miou_mode)}
    if "pq_tp" in stats:
        pq, _, _, counted = per_class_pq(panoptic_stats(stats))
        scored = [c for c in seen if counted[c]]
        scores["pq_seen"] = float(100 * pq[scored].mean()) if scored else float("nan")
    return scores


def matrix_frame(summary: dict, name: str, labels: tuple[str, str] = ("initial", "{t}")) -> pd.DataFrame:
    """R of metric `name` as a table, the initial row (when the run has one) first; `labels` name the initial
    row and (a format of t) the step rows."""
    rows = summary["matrices"][name]
    initial = (summary.get("initial") or {}).get(name)
    index = [labels[1].format(t=t) for t in range(len(rows))]
    if initial is not None:
        rows, index = [initial, *rows], [labels[0], *index]
    return pd.DataFrame(rows, columns=[f"C{j}" for j in range(len(rows[0]))], index=index, dtype=float)


def write_summary(run_dir: Path, summary: dict) -> None:
    """summary.json and one matrix_<metric>.csv per metric."""
    atomic_write_json(Path(run_dir) / "summary.json", summary)
    for name in summary["matrices"]:
        matrix = matrix_frame(summary, name)
        matrix.index.name = "after_step"
        atomic_write_text(Path(run_dir) / f"matrix_{name}.csv", matrix.to_csv(float_format="%.4f"))


def write_class_scores(run_dir: Path, step_classes: list[list[int]], class_names: list[str]) -> Path:
    """class_scores.csv: per step (and the initial evaluation, step -1) and class of the stream, the class's
    IoU (percent; NaN without ground-truth pixels in validation) and on panoptic streams its PQ, SQ, RQ, from
    the raw statistics. Rows: the classes learned by that step, and any other class with ground truth there."""
    run_dir = Path(run_dir)
    learned_at = {c: step for step, classes in enumerate(step_classes) for c in classes}
    initial = load_initial_stats(run_dir)
    records = []
    for step, stats in ([(-1, initial)] if initial is not None else []) + list(enumerate(load_step_stats(run_dir))):
        confusion = stats["confusion"]
        gt_pixels = confusion.sum(1)
        iou = np.where(gt_pixels > 0, 100 * per_class_iou(confusion), np.nan)  # predicted but absent: no score
        panoptic = per_class_pq(panoptic_stats(stats)) if "pq_tp" in stats else None
        for c in sorted(learned_at):
            if learned_at[c] > step and not gt_pixels[c]:
                continue
            record = {"step": step, "class_id": c, "class": class_names[c] if c < len(class_names) else f"class {c}",
                      "learned_at_step": learned_at[c], "gt_pixels": int(gt_pixels[c]), "iou": iou[c]}
            if panoptic is not None:
                pq, sq, rq, counted = panoptic
                record.update({name: 100 * values[c] if counted[c] else float("nan")
                               for name, values in (("pq", pq), ("sq", sq), ("rq", rq))})
            records.append(record)
    path = run_dir / "class_scores.csv"
    atomic_write_text(path, pd.DataFrame.from_records(records).to_csv(index=False, float_format="%.4f"))
    return path


# metrics that are another one under a CSS paper's name (base / novel = MiB's old / new): printed once, both named
SAME_NUMBER = {"base": "old", "novel": "new"}


def _merge_same(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per number: `base / old` for the rows `base` and `old` when they hold the same values."""
    for alias, name in SAME_NUMBER.items():
        if alias in metrics.index and name in metrics.index and metrics.loc[alias].equals(metrics.loc[name]):
            metrics = metrics.drop(index=alias).rename(index={name: f"{alias} / {name}"})
    return metrics


def format_summary(summary: dict, run_dir: Path) -> str:
    """The matrices and stream metrics as readable tables, each number once."""
    parts = []
    for name in summary["matrices"]:
        label = {"miou": "mIoU", "pq": "PQ"}.get(name, name)
        matrix = matrix_frame(summary, name, ("before step 0", "after step {t}"))
        parts.append(f"{label} matrix R[t][j] (rows: after step t; columns: classes of step j)\n"
                     f"{matrix.round(1).to_string(na_rep='-')}")
    metrics = _merge_same(pd.DataFrame(summary["metrics"], dtype=float).rename(columns={"miou": "mIoU", "pq": "PQ"}))
    parts.append(f"{summary['method']} on {summary['stream']}\n{metrics.round(2).to_string(na_rep='-')}")
    return "\n" + "\n\n".join(parts) + f"\n\nresults: {run_dir}"


def panoptic_stats(stats) -> dict[str, np.ndarray]:
    """The PanopticEvaluator state stored as pq_* arrays in a step's npz."""
    return {name: np.asarray(stats[f"pq_{name}"]) for name in ("tp", "fp", "fn", "iou_sum")}


def vocabulary_names(name: str | None, num_classes: int) -> list[str]:
    """Class names of a run's vocabulary (manifest "vocabulary"); "class <id>" when it cannot be loaded."""
    from benchmark.data.types import Vocabulary
    from benchmark.errors import DataError

    try:
        if name == "demo_40":
            from benchmark.data.demo import demo_vocabulary

            return demo_vocabulary().names
        return Vocabulary.load(name).names if name else []
    except DataError:
        return [f"class {c}" for c in range(num_classes)]


def build_summary(run_dir: Path, step_classes: list[list[int]], stream: str, method: str,
                  miou_mode: str = "present", more_metrics: MoreMetrics | None = None) -> dict:
    """summary.json from the raw per-step statistics on disk (never from rounded numbers); `more_metrics`:
    stream_metrics.stream_metric_values."""
    run_dir = Path(run_dir)
    return summarize(load_step_stats(run_dir), load_initial_stats(run_dir), load_step_records(run_dir),
                     step_classes, stream, method, run_dir.name, miou_mode, more_metrics)


def summarize(step_stats: list[dict[str, np.ndarray]], initial: dict[str, np.ndarray] | None, steps: list[dict],
              step_classes: list[list[int]], stream: str, method: str, run_id: str | None,
              miou_mode: str = "present", more_metrics: MoreMetrics | None = None) -> dict:
    """summary.json's content from the raw statistics of each step (and of the initial evaluation) and the
    per-step cost records (stats/step_NNN.json: learn_seconds, eval_seconds, memory_bytes, ...); `more_metrics`:
    stream_metrics.stream_metric_values."""
    results = {"miou": semantic_stream_results([s["confusion"] for s in step_stats], step_classes, miou_mode,
                                               initial["confusion"] if initial is not None else None, more_metrics)}
    if step_stats and "pq_tp" in step_stats[0]:
        results["pq"] = panoptic_stream_results([panoptic_stats(s) for s in step_stats], step_classes,
                                                panoptic_stats(initial) if initial is not None else None,
                                                more_metrics)
    return finite({
        "stream": stream, "method": method, "run_id": run_id, "num_steps": len(step_classes),
        "metrics": {name: r["summary"] for name, r in results.items()},
        "matrices": {name: r["matrix"].tolist() for name, r in results.items()},
        "initial": {name: r["initial"].tolist() for name, r in results.items() if r["initial"] is not None},
        "learning_gain": {name: r["learning_gain"] for name, r in results.items()},
        "seen": {name: r["seen"] for name, r in results.items()},
        # per step t: mIoU on the classes of earlier steps (S_{t-1}; none at step 0) and on the step's own C_t
        # (older summaries called them old / new: benchmark.leaderboard.runs.step_groups reads both)
        "previous_last": {"miou": {
            "previous": [mean_iou(s["confusion"], [c for j in range(t) for c in step_classes[j]], miou_mode)
                         if t else None for t, s in enumerate(step_stats)],
            "last": [mean_iou(s["confusion"], step_classes[t], miou_mode) for t, s in enumerate(step_stats)]}},
        "memory_bytes": [s["memory_bytes"] for s in steps],
        "trainable_parameters": [s.get("trainable_parameters", 0) for s in steps],
        "seconds": {"learn": [s["learn_seconds"] for s in steps], "eval": [s["eval_seconds"] for s in steps]},
    })


def class_iou_changes(confusions: Sequence[np.ndarray], step_classes: Sequence[Sequence[int]]
                      ) -> list[tuple[int, int, float, float]]:
    """(class id, step j that taught it, IoU % after step j, IoU % after the last step) for every class learned
    before the last step with ground truth in validation, largest drop first."""
    last = len(confusions) - 1
    final_iou = 100 * np.nan_to_num(per_class_iou(confusions[last]), nan=0.0)
    present = gt_present(confusions[last])
    changes = []
    for step, classes in enumerate(step_classes[:last]):
        first_iou = 100 * np.nan_to_num(per_class_iou(confusions[step]), nan=0.0)
        changes += [(int(c), step, float(first_iou[c]), float(final_iou[c])) for c in classes if present[c]]
    return sorted(changes, key=lambda change: (change[3] - change[2], change[0]))


def write_plots(run_dir: Path, summary: dict, step_classes: list[list[int]], class_names: Sequence[str]
                ) -> list[Path]:
    """The run's figures (benchmark.run.plots); a plotting error is reported and leaves the numbers alone."""
    try:
        confusions = load_confusions(run_dir)
        changes = class_iou_changes(confusions, step_classes) if confusions else None
        return write_run_plots(run_dir, summary, step_classes, class_names, changes)
    except Exception as exc:  # noqa: BLE001  (figures are derived; the run's record is already on disk)
        warnings.warn(f"could not draw the plots of {run_dir} ({type(exc).__name__}: {exc}); "
                      f"redraw them with `python -m benchmark report {run_dir}`", RuntimeWarning, stacklevel=2)
        return []


def write_run_results(run_dir: Path, step_classes: list[list[int]], class_names: Sequence[str], stream: str,
                      method: str, miou_mode: str = "present", more_metrics: MoreMetrics | None = None
                      ) -> tuple[dict, list[Path]]:
    """Everything derived from a run folder's raw statistics: summary.json with the matrix CSVs,
    class_scores.csv and the plots. Returns the summary and the plots' paths (RunWriter.finish takes them)."""
    summary = build_summary(run_dir, step_classes, stream, method, miou_mode, more_metrics)
    write_summary(run_dir, summary)
    write_class_scores(run_dir, step_classes, list(class_names))
    return summary, write_plots(run_dir, summary, step_classes, class_names)
