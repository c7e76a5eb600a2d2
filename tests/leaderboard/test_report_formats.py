"""Report formats as registered renderers over one table model (benchmark.leaderboard.formats): the built-in
ones, and one of one's own on COVSEG_PATH that `covseg leaderboard --format NAME` writes or prints."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from benchmark.leaderboard.command import main
from benchmark.leaderboard.formats import REPORT_FORMATS, register_format, report_formats

REPO = Path(__file__).resolve().parents[2]
FORMATS = textwrap.dedent('''
    import json

    from benchmark.leaderboard.formats import register_format


    def render_json(board):
        return json.dumps([{"stream": table.name, "variant": row["label"], "final": row["miou_final"][0]}
                           for table in board.tables for row in table.rows])


    register_format("json", render_json, file="leaderboard.json")
    register_format("finals", lambda board: "".join(f"{row['label']}: {row['miou_final'][0]:.2f}\\n"
                                                    for table in board.tables for row in table.rows))
''')


def make_run(results: Path, run_id: str, method: str, final: float, seed: int = 0) -> Path:
    """A complete run folder with only the files the leaderboard reads."""
    run_dir = results / "toy" / method / run_id
    run_dir.mkdir(parents=True)
    config = {"method": {"name": method}, "seed": seed,
              "stream": {"name": "toy", "dataset": "demo", "num_steps": 2, "order": "random", "order_seed": 0},
              "model": {"name": "tiny_random"}, "data": {"demo_seed": 0},
              "eval": {"vocabulary": "seen", "miou_mode": "present", "max_images": None}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / "manifest.json").write_text(json.dumps({"status": "complete", "stream": "toy", "stream_version": 1,
                                                       "stream_hash": "h", "method": method}))
    summary = {"num_steps": 2, "metrics": {"miou": {"final": final, "forgetting_max": 1.0}},
               "seen": {"miou": [final + 1, final]}, "memory_bytes": [0, 0], "seconds": {"learn": [1, 1], "eval": [1, 1]}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


@pytest.fixture
def results(tmp_path) -> Path:
    root = tmp_path / "results"
    make_run(root, "a", "zeroshot", 10.0)
    make_run(root, "b", "zeroshot", 12.0, seed=1)
    return root


def test_the_built_in_formats_are_registered_renderers(results, capsys):
    assert REPORT_FORMATS.names() == ["csv", "html", "latex", "markdown", "terminal"]
    assert [f.name for f in report_formats([])] == ["markdown", "csv", "html", "terminal"]
    assert [f.name for f in report_formats(["latex", "csv"])] == ["markdown", "csv", "html", "terminal", "latex"]
    assert main([f"results_dir={results}", "bootstrap=0"]) == 0
    assert "11.0 ± 1.4" in capsys.readouterr().out  # the terminal format: printed
    written = {p.name for p in results.iterdir() if p.is_file()}
    assert {"LEADERBOARD.md", "leaderboard.csv", "leaderboard.html", "results.csv"} <= written
    assert "leaderboard.tex" not in written  # latex only when asked
    assert main([f"results_dir={results}", "bootstrap=0", "--format", "latex"]) == 0
    assert "11.0 \\pm 1.4" in (results / "leaderboard.tex").read_text()
    with pytest.raises(ValueError, match="report format 'csv' is already registered"):
        register_format("csv", lambda board: "")


def cli(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env,
                   "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-m", "benchmark", *args], capture_output=True, text=True, timeout=180,
                          env=environment, cwd=cwd)


def test_a_format_of_ones_own_on_covseg_path(results, tmp_path):
    folder = tmp_path / "my_formats"
    folder.mkdir()
    (folder / "my_formats.py").write_text(FORMATS)
    env = {"COVSEG_PATH": str(folder)}
    plain = cli("leaderboard", f"results_dir={results}", "bootstrap=0", env=env, cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert not (results / "leaderboard.json").exists() and "zeroshot: 11.00" not in plain.stdout  # only when asked
    asked = cli("leaderboard", f"results_dir={results}", "bootstrap=0", "--format", "json,finals", env=env, cwd=tmp_path)
    assert asked.returncode == 0, asked.stderr
    assert json.loads((results / "leaderboard.json").read_text()) == [
        {"stream": "toy", "variant": "zeroshot", "final": 11.0}]
    assert "zeroshot: 11.00\n" in asked.stdout and str(results / "leaderboard.json") in asked.stdout
    unknown = cli("leaderboard", f"results_dir={results}", "--format", "json", env={}, cwd=tmp_path)
    assert unknown.returncode == 2
    assert "format=json is not a report format" in unknown.stderr and "registered: csv, html, latex" in unknown.stderr
