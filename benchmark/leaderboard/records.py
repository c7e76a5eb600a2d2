"""A run as long records, one per step x class group x metric: the rows of `benchmark.results.load` and of
the leaderboard's results.csv (the columns are described in benchmark/results.py)."""
from __future__ import annotations

from pathlib import Path

from benchmark.evaluation.stream_metrics import STREAM_METRICS
from benchmark.leaderboard.runs import Run, current_names, number, step_groups

COLUMNS = ("run", "run_id", "stream", "stream_version", "stream_hash", "method", "variant", "name", "tags", "model",
           "config_hash", "method_digest", "eval_vocabulary", "num_steps", "seed", "order_seed", "feature_cache",
           "superseded", "step", "group", "metric", "value", "higher_is_better")
COST_METRICS = ("memory_bytes", "learn_seconds", "eval_seconds")  # group "cost": lower is better


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of `metric` (a `metric` column entry: `miou`, `miou.final`, `memory_bytes`) is
    better: as its stream metric was registered (benchmark.evaluation.stream_metrics); costs are lower-better,
    every other score (and a stream metric no module registered in this process) higher-better."""
    name = metric.rsplit(".", 1)[-1]
    if name in COST_METRICS:
        return False
    return STREAM_METRICS.get(name).higher_is_better if name in STREAM_METRICS else True


def run_records(run: Run, results_dir: Path | None = None, superseded: bool = False) -> list[dict]:
    """The rows of one complete run (see benchmark/results.py); `superseded`: a later run repeats it."""
    summary, manifest = run.summary, run.manifest
    num_steps = summary.get("num_steps") or len(summary.get("memory_bytes") or [])
    base = {"run": run.path.relative_to(results_dir).as_posix() if results_dir else run.path.as_posix(),
            "run_id": run.path.name, "stream": manifest.stream, "stream_version": manifest.stream_version,
            "stream_hash": manifest.stream_hash, "method": run.method_config["name"],
            "variant": run.variant(), "name": run.config.get("name"), "tags": ";".join(run.config.get("tags") or []),
            "model": run.model_label(), "config_hash": run.config_hash,
            "method_digest": (manifest.method_source or {}).get("digest"),
            "eval_vocabulary": run.eval_setting()["vocabulary"], "num_steps": num_steps,
            "seed": run.config.get("seed"), "order_seed": run.order_seed, "feature_cache": run.feature_cache,
            "superseded": superseded}
    records = []

    def add(step: int, group: str, metric: str, value) -> None:
        records.append({**base, "step": step, "group": group, "metric": metric, "value": number(value),
                        "higher_is_better": higher_is_better(metric)})

    for metric, rows in (summary.get("matrices") or {}).items():
        for step, row in enumerate(rows):
            for j, value in enumerate(row):
                if value is not None:
                    add(step, f"C{j}", metric, value)
        for j, value in enumerate((summary.get("initial") or {}).get(metric) or []):
            if value is not None:
                add(-1, f"C{j}", metric, value)
        for step, value in enumerate((summary.get("seen") or {}).get(metric) or []):
            add(step, "seen", metric, value)
        for group, values in step_groups(summary).get(metric, {}).items():
            for step, value in enumerate(values):
                if value is not None:
                    add(step, group, metric, value)
    for metric, values in (summary.get("metrics") or {}).items():
        for key, value in current_names(values).items():
            add(num_steps - 1, "stream", f"{metric}.{key}", value)
    seconds = summary.get("seconds") or {}
    for step, value in enumerate(summary.get("memory_bytes") or []):
        add(step, "cost", "memory_bytes", value)
    for name in ("learn", "eval"):
        for step, value in enumerate(seconds.get(name) or []):
            add(step, "cost", f"{name}_seconds", value)
    return records
