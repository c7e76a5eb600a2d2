"""leaderboard.csv: the `csv` report format, one line per row of every stream table, means, stds and n of
every stream metric in separate columns, with the row's full provenance."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.leaderboard.statistics import StreamTable, metric_columns
from benchmark.leaderboard.table import Leaderboard, link

NAN = float("nan")


def leaderboard_frame(tables: list[StreamTable], results_dir: Path) -> pd.DataFrame:
    """The CSV: one line per row of every table, means and stds in separate columns, full provenance."""
    records = []
    for table in tables:
        hashes = sorted({str(h) for hs in table.hashes_by_order().values() for h in hs})
        for rank, row in enumerate(table.rows, 1):
            record = {
                "stream": table.name, "stream_version": table.version, "stream_definition": table.definition,
                "stream_hashes": ";".join(hashes), "section": "analysis" if table.analysis else "ranking",
                "rank": "" if table.analysis else rank, "method": row["method"], "label": row["label"],
                "config_hash": row["config_hash"], "model": row["model"], "n_runs": row["n_runs"],
                "seeds": ";".join(map(str, row["seeds"])), "order_seeds": ";".join(map(str, row["order_seeds"])),
            }
            for column in metric_columns():
                mean, std, n = row[column.field]
                record.update({f"{column.field}_mean": mean, f"{column.field}_std": std, f"{column.field}_n": n})
            record["miou_final_ci_low"], record["miou_final_ci_high"] = row["miou_final_ci"]
            reference, (mean, std, n) = row["paired"]
            record.update(paired_reference=reference, paired_final_diff_mean=mean, paired_final_diff_std=std,
                          paired_n=n)
            record["memory_bytes_mean"] = row["memory_bytes"][0]
            record["seconds_per_step_mean"] = row["seconds_per_step"][0]
            for state in ("cold", "warm"):
                record[f"seconds_per_step_{state}_mean"] = row["seconds_per_step_by_cache"].get(state, (NAN,))[0]
            record["git_commits"] = ";".join(row["git"])
            record["runs"] = ";".join(link(r.path, results_dir) for r in row["runs"])
            record["superseded_runs"] = ";".join(link(r.path, results_dir) for r in row["superseded"])
            record["ground_truth_access"] = row["ground_truth_access"]
            record["isolated"] = row["isolated"]
            record["provenance"] = ";".join(f"{issue}={count}" for issue, count in row["provenance"].items())
            records.append(record)
    return pd.DataFrame.from_records(records)


# --columns key -> its CSV fields (a stream metric's: <field>_mean, _std, _n); the stream's and the rank always
CSV_FIELDS = {"variant": ["method", "label"], "model": ["model"], "n": ["n_runs", "seeds", "order_seeds"],
              "ci": ["miou_final_ci_low", "miou_final_ci_high"],
              "paired": ["paired_reference", "paired_final_diff_mean", "paired_final_diff_std", "paired_n"],
              "memory": ["memory_bytes_mean"],
              "time": ["seconds_per_step_mean", "seconds_per_step_cold_mean", "seconds_per_step_warm_mean"],
              "config": ["config_hash"],
              "provenance": ["git_commits", "runs", "superseded_runs", "ground_truth_access", "isolated", "provenance"]}
ALWAYS = ["stream", "stream_version", "stream_definition", "stream_hashes", "section", "rank"]


def render_csv(board: Leaderboard) -> str:
    frame = leaderboard_frame(board.tables, board.results_dir)
    if board.columns is not None and not frame.empty:
        fields = [f for key in board.columns for f in CSV_FIELDS.get(key, [f"{key}_mean", f"{key}_std", f"{key}_n"])]
        frame = frame[ALWAYS + [f for f in fields if f in frame.columns]]
    return frame.to_csv(index=False)
