"""A researcher's own folder named like one of the harness's top-level packages (methods/, baselines/, streams/)
would be imported in their place; the CLI refuses that in one line naming the folder."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": f"{cwd}:{REPO}", "PATH": "/usr/bin:/bin"}  # cwd first, as `python -m` puts it
    return subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("name", ["methods", "streams"])
def test_a_shadowing_folder_is_named_in_one_line(tmp_path, name):
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
    result = cli(tmp_path, "list", "methods")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / name) in lines[0] and "shadows" in lines[0]


def test_no_shadowing_lists_methods(tmp_path):
    result = cli(tmp_path, "list", "methods")
    assert result.returncode == 0, result.stderr
    assert "knnclip" in result.stdout
