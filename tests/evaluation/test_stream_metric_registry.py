"""Stream metrics as registered entries (benchmark.evaluation.stream_metrics): the built-in ones in their order,
and one of one's own on COVSEG_PATH flowing into summary.json, `covseg report`, the leaderboard and
benchmark.results with no other change."""
import csv
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import benchmark.results
from benchmark.evaluation.stream_metrics import STREAM_METRICS, register_stream_metric, stream_metrics

REPO = Path(__file__).resolve().parents[2]
DIAG_MEAN = textwrap.dedent('''
    import numpy as np

    from benchmark.evaluation.stream_metrics import register_stream_metric

    register_stream_metric("diag_mean", lambda matrix, initial: float(np.nanmean(np.diagonal(matrix))),
                           higher_is_better=True, label="diag mean")
''')


def test_the_built_in_metrics_are_registered_entries_in_summary_order():
    assert [m.name for m in stream_metrics()][:13] == [
        "final", "avg_incremental", "forgetting_max", "forgetting_first", "bwt", "forward_transfer", "learning_gain",
        "old", "new", "previous", "last", "base", "novel"]
    assert not STREAM_METRICS.get("forgetting_max").higher_is_better and STREAM_METRICS.get("bwt").higher_is_better
    with pytest.raises(ValueError, match="stream metric 'bwt' is already registered"):
        register_stream_metric("bwt", lambda matrix, initial: 0.0, higher_is_better=True, label="BWT")


def cli(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env, "OMP_NUM_THREADS": "1",
                   "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-m", "benchmark", *args], capture_output=True, text=True, timeout=300,
                          env=environment, cwd=cwd)


def test_a_metric_of_ones_own_on_covseg_path_reaches_summary_report_leaderboard_and_results(tmp_path, demo_root):
    folder = tmp_path / "my_metrics"
    folder.mkdir()
    (folder / "diag_metric.py").write_text(DIAG_MEAN)
    env = {"COVSEG_PATH": str(folder)}
    results = tmp_path / "results"
    run = cli("run", "method=zeroshot", "stream=demo_4steps", f"data.root={demo_root}", f"results_dir={results}",
              "quiet=true", "eval.max_images=4", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    [summary_path] = results.glob("demo_4steps/zeroshot/*/summary.json")
    summary = json.loads(summary_path.read_text())
    matrix = np.array(summary["matrices"]["miou"], dtype=float)
    expected = float(np.nanmean(np.diagonal(matrix)))
    assert summary["metrics"]["miou"]["diag_mean"] == pytest.approx(expected)

    # `covseg report` recomputes it from the raw statistics
    del summary["metrics"]["miou"]["diag_mean"]
    summary_path.write_text(json.dumps(summary))
    report = cli("report", str(summary_path.parent), env=env, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "diag_mean" in report.stdout
    assert json.loads(summary_path.read_text())["metrics"]["miou"]["diag_mean"] == pytest.approx(expected)

    board = cli("leaderboard", f"results_dir={results}", "bootstrap=0", env=env, cwd=tmp_path)
    assert board.returncode == 0, board.stderr
    assert "diag mean" in board.stdout  # the terminal table's column
    with open(results / "leaderboard.csv") as handle:
        [row] = list(csv.DictReader(handle))
    assert float(row["miou_diag_mean_mean"]) == pytest.approx(expected) and row["miou_diag_mean_n"] == "1"
    assert "| diag mean |" in (results / "LEADERBOARD.md").read_text()
    assert "<th class=\"num\">diag mean</th>" in (results / "leaderboard.html").read_text()

    frame = benchmark.results.load(results)
    [value] = frame.query("group == 'stream' and metric == 'miou.diag_mean'")["value"]
    assert value == pytest.approx(expected) and not math.isnan(value)


IMPORT_LOG = textwrap.dedent('''
    import os
    import pathlib

    with open(pathlib.Path(__file__).with_name("imported_by.txt"), "a") as log:  # which processes import this
        log.write(f"{os.getpid()}\\n")
''')


def test_an_isolated_run_has_the_metric_of_ones_own_in_summary_and_only_its_worker_imports_it(tmp_path, demo_root):
    folder = tmp_path / "my_metrics"
    folder.mkdir()
    (folder / "diag_metric.py").write_text(DIAG_MEAN + IMPORT_LOG)
    results = tmp_path / "results"
    run = cli("run", "method=zeroshot", "stream=demo_4steps", f"data.root={demo_root}", f"results_dir={results}",
              "quiet=true", "eval.max_images=4", "isolate=true", env={"COVSEG_PATH": str(folder)}, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    [run_dir] = results.glob("demo_4steps/zeroshot/*")
    summary = json.loads((run_dir / "summary.json").read_text())  # as the run wrote it: no `covseg report`
    matrix = np.array(summary["matrices"]["miou"], dtype=float)
    assert summary["metrics"]["miou"]["diag_mean"] == pytest.approx(float(np.nanmean(np.diagonal(matrix))))
    assert list(summary["metrics"]["miou"])[-2:] == ["diag_mean", "initial"]  # the order of an in-process run

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["execution"]["isolate"] is True
    assert [record["module"] for record in manifest["plugins"]] == ["diag_metric"]  # foreign code: marked ¶
    [importer] = (folder / "imported_by.txt").read_text().split()  # the worker: never the parent (the run)
    assert int(importer) != manifest["process"]["pid"]
