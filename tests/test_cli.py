import subprocess
import sys

import pytest


def run_cli(*args: str, cwd=None):
    return subprocess.run([sys.executable, "-m", "benchmark", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize("args, expected", [
    (["run", "method=knnclp", "stream=demo_4steps"], "unknown method 'knnclp' (did you mean: knnclip?)"),
    (["run", "method=knnclip", "stream=ade847_10step"], "unknown stream 'ade847_10step' (did you mean: ade847_10steps"),
    (["runn"], "unknown subcommand 'runn' (did you mean: run?)"),
])
def test_unknown_names_one_line_no_traceback(args, expected):
    result = run_cli(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_dataset_names_path_setting_and_prepare(tmp_path):
    results = tmp_path / "results"
    result = run_cli("run", "stream=ade847_10steps", f"data.root={tmp_path / 'nodata'}", f"results_dir={results}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert str(tmp_path / "nodata" / "ADE20K_2021_17_01") in line and "data.root=" in line and "prepare ade20k_full" in line
    assert not results.exists()


def test_list_shows_registered_names():
    result = run_cli("list")
    assert result.returncode == 0
    assert "knnclip" in result.stdout and "zeroshot" in result.stdout and "demo_4steps" in result.stdout
    assert "tiny_random" in result.stdout
