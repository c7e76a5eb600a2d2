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

from benchmark.reporting.runs import COLUMNS, read_runs, run_records

if TYPE_CHECKING:
    import pandas as pd


def load(results_dir: str | Path, stream: str | None = None) -> pd.DataFrame:
    """Every complete run under `results_dir` (optionally of one stream) as one long DataFrame."""
    import pandas as pd

    results_dir = Path(results_dir)
    runs, _ = read_runs(results_dir, stream)
    records = [record for run in runs for record in run_records(run, results_dir)]
    return pd.DataFrame.from_records(records, columns=list(COLUMNS))
