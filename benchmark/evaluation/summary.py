"""A run's numbers from its raw per-step statistics (stats/step_NNN.npz, stats/initial.npz): summary.json, the
matrix CSVs, class_scores.csv and the printed tables. RunWriter writes them as a run finishes; `python -m
benchmark report` rewrites them from the same files, so a new metric never needs a rerun."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.evaluation.panoptic import per_class_pq
from benchmark.evaluation.semantic import mean_iou, per_class_iou
from benchmark.evaluation.stream_metrics import panoptic_stream_results, semantic_stream_results
from benchmark.io import atomic_write_json, atomic_write_text

def finite(value):
    """NaN -> None so summary.json is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [finite(v) for v in value]
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return value


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


INITIAL_STATS = "initial.npz"  # stats/ file of the initial evaluation (never matches step_*.npz)


def load_initial_stats(run_dir: Path) -> dict[str, np.ndarray] | None:
    path = Path(run_dir) / "stats" / INITIAL_STATS
    return dict(np.load(path)) if path.is_file() else None


def load_step_stats(run_dir: Path) -> list[dict[str, np.ndarray]]:
    files = sorted((Path(run_dir) / "stats").glob("step_*.npz"))
    return [dict(np.load(f)) for f in files]


def load_confusions(run_dir: Path) -> list[np.ndarray]:
    return [stats["confusion"] for stats in load_step_stats(run_dir)]


def build_summary(run_dir: Path, step_classes: list[list[int]], stream: str, method: str,
                  miou_mode: str = "present") -> dict:
    """summary.json from the raw per-step statistics on disk (never from rounded numbers)."""
    run_dir = Path(run_dir)
    steps = [json.loads(p.read_text()) for p in sorted((run_dir / "stats").glob("step_*.json"))]
    return summarize(load_step_stats(run_dir), load_initial_stats(run_dir), steps, step_classes, stream, method,
                     run_dir.name, miou_mode)


def summarize(step_stats: list[dict[str, np.ndarray]], initial: dict[str, np.ndarray] | None, steps: list[dict],
              step_classes: list[list[int]], stream: str, method: str, run_id: str | None,
              miou_mode: str = "present") -> dict:
    """summary.json's content from the raw statistics of each step (and of the initial evaluation) and the
    per-step cost records (stats/step_NNN.json: learn_seconds, eval_seconds, memory_bytes, ...)."""
    results = {"miou": semantic_stream_results([s["confusion"] for s in step_stats], step_classes, miou_mode,
                                               initial["confusion"] if initial is not None else None)}
    if step_stats and "pq_tp" in step_stats[0]:
        results["pq"] = panoptic_stream_results([panoptic_stats(s) for s in step_stats], step_classes,
                                                panoptic_stats(initial) if initial is not None else None)
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
