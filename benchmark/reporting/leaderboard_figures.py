"""The leaderboard's figures: per stream table, the score on S_t after each step (one line per row), mIoU on
seen / old / new classes, final mIoU vs memory (Pareto) and forgetting, into <results_dir>/plots/."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.reporting.plots import (comparison_curves_figure, forgetting_bars_figure, pareto_figure, save_figure,
                                       seen_curves_figure)
from benchmark.reporting.statistics import StreamTable, curve


def write_curves(tables: list[StreamTable], results_dir: Path) -> dict[str, dict[str, Path]]:
    """Per stream table and metric, one figure of the score on S_t after each step, all rows together."""
    files: dict[str, dict[str, Path]] = {}
    for table in tables:
        models = {row["model"] for row in table.rows}
        for metric in ("miou", "pq"):
            curves = {(row["label"] + (f" · {row['model']}" if len(models) > 1 else "") + f" (n={row['n_runs']})"):
                      row["curves"][metric] for row in table.rows if metric in row["curves"]}
            if not curves:
                continue
            label = {"miou": "mIoU", "pq": "PQ"}[metric]
            title = (f"{table.name} v{table.version} ({table.definition}): {label} on all classes seen so far, "
                     "mean ± std over runs")
            path = results_dir / "plots" / f"{table.slug}-{metric}_seen.png"
            files.setdefault(table.slug, {})[metric] = save_figure(seen_curves_figure(curves, title, metric), path)
        files.setdefault(table.slug, {}).update(write_comparisons(table, results_dir, len(models) > 1))
    return files


def _row_name(row: dict, with_model: bool) -> str:
    return row["label"] + (f" · {row['model']}" if with_model else "") + f" (n={row['n_runs']})"


def write_comparisons(table: StreamTable, results_dir: Path, with_model: bool) -> dict[str, Path]:
    """The table's comparison figures: mIoU on all seen / old / new classes per step (every row on one chart),
    final mIoU vs memory (Pareto) and forgetting with error bars."""
    plots = results_dir / "plots"
    heading = f"{table.name} v{table.version} ({table.definition})"
    files = {}
    panels = {"all classes seen so far (S_t)": {}, "classes of earlier steps (S_{t-1})": {},
              "classes of step t (C_t)": {}}
    for row in table.rows:
        name = _row_name(row, with_model)
        if "miou" in row["curves"]:
            panels["all classes seen so far (S_t)"][name] = row["curves"]["miou"]
        for group, panel in (("old", "classes of earlier steps (S_{t-1})"), ("new", "classes of step t (C_t)")):
            values = curve(row["runs"], "miou", lambda run, g=group: (run.summary.get("old_new") or {}).get("miou", {}).get(g))
            if np.isfinite(values[0]).any():
                panels[panel][name] = values
    if any(panels.values()):
        title = f"{heading}: mIoU after each step, mean ± std over runs"
        files["curves"] = save_figure(comparison_curves_figure({k: v for k, v in panels.items() if v}, title),
                                      plots / f"{table.slug}-miou_seen_old_new.png")
    points = [(_row_name(row, with_model), row["memory_bytes"][0], row["memory_bytes"][1], *row["miou_final"][:2])
              for row in table.rows]
    if any(np.isfinite(p[3]) for p in points):
        files["pareto"] = save_figure(pareto_figure(points, f"{heading}: final mIoU vs memory (mean ± std)"),
                                      plots / f"{table.slug}-pareto.png")
    bars = [(_row_name(row, with_model), *row["miou_forgetting_max"]) for row in table.rows]
    if any(np.isfinite(b[1]) for b in bars):
        files["forgetting"] = save_figure(forgetting_bars_figure(bars, f"{heading}: forgetting (mean ± std over runs)"),
                                          plots / f"{table.slug}-forgetting.png")
    return files
