"""Every command the README and docs/ show runs as written: each `benchmark run` composes into a valid
configuration through the CLI (`--cfg job`, every job of a sweep included), the commands that run no model
(`list`, `streams show`, `leaderboard`, `-h`) run, and (slow) the demo runs run exactly as shown."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PLACEHOLDERS = {"$PRED": "/data/predictions", "<run-id>": "some-run", "$SLURM_JOB_ID": "1", "$EVAL": "configs"}


def shell_lines(page: Path) -> list[str]:
    """The lines of a page's ```bash blocks, continued lines joined, comments and placeholders resolved."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                for placeholder, value in PLACEHOLDERS.items():
                    line = line.replace(placeholder, value)
                lines.append(line)
    return lines


def harness_commands(subcommand: str) -> list[tuple[str, list[str]]]:
    """(page, argv after `benchmark` / `covseg`) of every shown `SUBCOMMAND` command; generic forms left out."""
    found = []
    for page in PAGES:
        for line in shell_lines(page):
            match = re.search(r"(?:-m benchmark|covseg) (" + subcommand + r"\b.*)", line)
            if not match or "..." in line or "NAME" in line or "[" in match.group(1).split("=")[0]:
                continue
            found.append((page.name, shlex.split(match.group(1))))
    return found


RUNS = harness_commands("run")


def test_the_pages_show_run_commands():
    assert len(RUNS) >= 10


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("hydra")])
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


@pytest.mark.parametrize("page, argv", RUNS, ids=[f"{p}: {' '.join(a)}" for p, a in RUNS])
def test_a_shown_run_command_composes_through_the_cli(page, argv, capsys):
    from benchmark.__main__ import main
    from benchmark.cli import shell_overrides

    args = argv[1:]
    if {"-h", "--help", "--cfg"} & set(args):  # they run nothing: run them as written
        assert main(["run", *args]) == 0
        return
    if "-m" in args or "--multirun" in args:
        for job in sweep_jobs(shell_overrides([a for a in args if a not in ("-m", "--multirun")])):
            assert main(["run", *job, "--cfg", "job"]) == 0, job
        return
    assert main(["run", *args, "--cfg", "job"]) == 0, argv
    capsys.readouterr()


def test_the_pages_name_only_existing_subcommands():
    from benchmark.__main__ import SUBCOMMANDS

    named = {m for page in PAGES for m in re.findall(r"(?:-m benchmark|covseg) ([a-z][a-z-]*)", page.read_text())}
    assert {"run", "leaderboard", "prepare", "perf", "miou", "pq", "show"} <= named
    assert named <= set(SUBCOMMANDS), sorted(named - set(SUBCOMMANDS))


# (a folder dataset's commands need the folder its page makes first: tests/data/test_folder_docs.py runs them)
CHEAP = [(page, argv) for sub in ("list", r"streams show") for page, argv in harness_commands(sub)
         if not any(a.startswith("stream.path=") for a in argv)]


@pytest.mark.parametrize("page, argv", CHEAP, ids=[f"{p}: {' '.join(a)}" for p, a in CHEAP])
def test_a_shown_command_that_runs_no_model_runs_as_written(page, argv, capsys):
    from benchmark.__main__ import main

    assert main(argv) == 0 and capsys.readouterr().out


def is_demo(argv: list[str]) -> bool:
    streams = [a.split("=", 1)[1] for a in argv if a.startswith("stream=")]
    return "-m" not in argv and not {"-h", "--cfg"} & set(argv) and all(s.startswith("demo_") for s in streams) \
        and not any(a.startswith(("model=", "resume=", "device=")) for a in argv)


DEMO_RUNS = [(page, argv) for page, argv in RUNS if is_demo(argv[1:])]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One cache folder for the demo runs below: the demo the default data root draws is generated once."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.slow
@pytest.mark.parametrize("page, argv", DEMO_RUNS, ids=[f"{p}: {' '.join(a)}" for p, a in DEMO_RUNS])
def test_a_shown_demo_run_runs_as_written(page, argv, tmp_path, shared_cache):
    env = {**os.environ, "XDG_CACHE_HOME": str(shared_cache), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "benchmark", *argv, "quiet=true"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert list((tmp_path / "results").glob("*/*/*/summary.json"))
