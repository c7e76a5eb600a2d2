"""Results as data: `load(results_dir) -> pandas.DataFrame`, one row per run x step x class group x metric.

    import benchmark.results
    frame = benchmark.results.load("results")
    frame.query("group == 'seen' and metric == 'miou'").pivot_table("value", "step", "method")

Columns: `run` (folder relative to results_dir), `run_id`, `stream`, `stream_version`, `stream_hash`,
`method`, `config_hash` (the resolved config without seeds and execution settings: the leaderboard's row),
`method_digest` (sha256 of the method's source files, manifest `method_source.digest`), `seed`, `order_seed`,
`step` (0..T-1; -1 the initial evaluation before step 0), `group`, `metric`, `value`, `higher_is_better`:

    group "seen"     metric miou | pq     score on S_t after step t (percent)
    group "old"      metric miou          score on S_{t-1} after step t (t >= 1); "new": on C_t after step t
    group "C<j>"     metric miou | pq     R[t][j]: score on the classes of step j after step t (-1: initial)
    group "stream"   metric miou.final, miou.forgetting_max, pq.bwt, ...   stream metrics, at the last step
    group "cost"     metric memory_bytes | learn_seconds | eval_seconds      per step

Only complete runs are read (the leaderboard lists the others). The leaderboard reads its numbers from these
records (`run_records`), so the table and the frame cannot disagree.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from benchmark.reporting.leaderboard import Run

COLUMNS = ("run", "run_id", "stream", "stream_version", "stream_hash", "method", "config_hash", "method_digest",
           "seed", "order_seed", "step", "group", "metric", "value", "higher_is_better")
# stream metrics (the part after "miou." / "pq.") whose lower values are better; every other score is higher-better
LOWER_IS_BETTER = ("forgetting_max", "forgetting_first", "excess_forgetting", "memory_bytes", "learn_seconds",
                   "eval_seconds")


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of `metric` (a `metric` column entry, e.g. `miou.forgetting_max`) is better."""
    return metric.rsplit(".", 1)[-1] not in LOWER_IS_BETTER


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def run_records(run: Run, results_dir: Path | None = None) -> list[dict]:
    """The rows of one complete run (see the module docstring)."""
    summary, manifest = run.summary, run.manifest
    base = {"run": run.path.relative_to(results_dir).as_posix() if results_dir else run.path.as_posix(),
            "run_id": run.path.name, "stream": manifest.get("stream"), "stream_version": manifest.get("stream_version"),
            "stream_hash": manifest.get("stream_hash"), "method": run.method_config["name"],
            "config_hash": run.config_hash, "method_digest": (manifest.get("method_source") or {}).get("digest"),
            "seed": run.config.get("seed"), "order_seed": run.order_seed}
    records = []

    def add(step: int, group: str, metric: str, value) -> None:
        records.append({**base, "step": step, "group": group, "metric": metric, "value": _number(value),
                        "higher_is_better": higher_is_better(metric)})

    num_steps = summary.get("num_steps") or len(summary.get("memory_bytes") or [])
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
        for group, values in ((summary.get("old_new") or {}).get(metric) or {}).items():
            for step, value in enumerate(values):
                if value is not None:
                    add(step, group, metric, value)
    for metric, values in (summary.get("metrics") or {}).items():
        for key, value in values.items():
            add(num_steps - 1, "stream", f"{metric}.{key}", value)
    seconds = summary.get("seconds") or {}
    for step, value in enumerate(summary.get("memory_bytes") or []):
        add(step, "cost", "memory_bytes", value)
    for name in ("learn", "eval"):
        for step, value in enumerate(seconds.get(name) or []):
            add(step, "cost", f"{name}_seconds", value)
    return records


def load(results_dir: str | Path, stream: str | None = None) -> pd.DataFrame:
    """Every complete run under `results_dir` (optionally of one stream) as one long DataFrame."""
    import pandas as pd

    from benchmark.reporting.leaderboard import read_runs

    results_dir = Path(results_dir)
    runs, _ = read_runs(results_dir, stream)
    records = [record for run in runs for record in run_records(run, results_dir)]
    return pd.DataFrame.from_records(records, columns=list(COLUMNS))
