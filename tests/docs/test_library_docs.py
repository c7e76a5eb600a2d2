"""docs/library.md's worked examples (the ```python blocks whose first line is `# example: NAME`) run as written,
on the demo, each in its own process in an empty folder: a plain PyTorch loop and an Avalanche loop over
streams.load, scored by StreamEvaluator, each writing a run folder the leaderboard reads."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "library.md"


def examples() -> dict[str, str]:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    return {match.group(1): block for block in blocks if (match := re.match(r"# example: (\S+)\n", block))}


def test_the_page_has_both_examples():
    assert set(examples()) == {"pytorch", "avalanche"}


@pytest.mark.parametrize("name", ["pytorch", "avalanche"])
def test_example_runs(name, demo_root, tmp_path):
    from benchmark.leaderboard.runs import read_runs

    script = tmp_path / f"example_{name}.py"  # not avalanche.py: it would shadow the package
    script.write_text(examples()[name])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    runs, skipped = read_runs(tmp_path / "results")
    assert skipped == [] and len(runs) == 1
    run = runs[0]
    assert run.manifest["loop"] == "external" and run.summary["num_steps"] == 4
    assert list(run.manifest["method_source"]["files"]) == [script.resolve().as_posix()]  # the loop's own code
    assert str(run.path.relative_to(tmp_path)) in done.stdout
