"""Results as data: `load(results_dir) -> pandas.DataFrame`, one row per run x step x class group x metric.

The leaderboard's numbers are these rows, so a groupby over the frame gives its means, stds and n:

    import benchmark.results
    frame = benchmark.results.load("results")            # complete runs; superseded repeats left out
    final = frame.query("group == 'stream' and metric == 'miou.final'")
    final.groupby(["stream", "stream_version", "config_hash", "variant", "model"])["value"].agg(["mean", "std", "count"])

    # mIoU on S_t after each step, one column per variant (mean over its runs)
    seen = frame.query("group == 'seen' and metric == 'miou'")
    seen.pivot_table("value", index="step", columns=["variant", "model"], aggfunc="mean")

Group by `config_hash` (or by `variant` and `model` together): a method name alone mixes configurations, and
a `variant` label alone mixes models. Repeats of one experiment (same configuration, seed, class order and
data) count once: `load` keeps the latest finished; `load(..., superseded=True)` returns every run, the others
flagged `superseded`.

Columns: `run` (folder relative to results_dir), `run_id`, `stream`, `stream_version`, `stream_hash`,
`method`, `variant` (the run's short label: its `name=`, else e.g. `avalanche/EWC λ=1000`), `name` and `tags`
(`;`-joined) as set at run time, `model` (model label), `config_hash` (the resolved config without seeds and
execution settings: the leaderboard's row), `method_digest` (sha256 of the method's source files, manifest
`method_source.digest`), `eval_vocabulary` (seen | all), `num_steps`, `seed`, `order_seed`, `feature_cache`
(warm: most per-image features were read from the disk cache, so its times are lower; cold; empty: not
recorded), `superseded`,
`step` (0..T-1; -1 the initial evaluation before step 0), `group`, `metric`, `value`, `higher_is_better`:

    group "seen"     metric miou | pq     score on S_t after step t (percent)
    group "previous" metric miou          score on S_{t-1} after step t (t >= 1); "last": on C_t after step t
    group "C<j>"     metric miou | pq     R[t][j]: score on the classes of step j after step t (-1: initial)
    group "stream"   metric miou.final, pq.bwt, ...   every registered stream metric, at the last step
    group "cost"     metric memory_bytes | learn_seconds | eval_seconds      per step

Only complete runs are read (the leaderboard lists the others). Runs are read by benchmark.leaderboard.runs, as
the leaderboard reads them; every registered stream metric (benchmark.evaluation.stream_metrics) a run's
summary.json holds is a `stream` row.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.leaderboard.records import COLUMNS, run_records
from benchmark.leaderboard.runs import deduplicate, read_runs


def load(results_dir: str | Path, stream: str | None = None, superseded: bool = False) -> pd.DataFrame:
    """Every complete run under `results_dir` (optionally of one stream) as one long DataFrame; `superseded`:
    also the repeats a later run of the same experiment replaced (column `superseded` True)."""
    results_dir = Path(results_dir)
    runs, _ = read_runs(results_dir, stream)
    counted, replaced = deduplicate(runs)
    records = [record for run in counted for record in run_records(run, results_dir)]
    if superseded:
        records += [record for run in replaced for record in run_records(run, results_dir, superseded=True)]
    return pd.DataFrame.from_records(records, columns=list(COLUMNS))
