"""Every `benchmark run` command the README shows composes into a valid configuration (each combination of a
sweep included), so the documentation cannot drift from the config schema. Nothing is run."""
import re
import shlex
from pathlib import Path

import pytest

from benchmark.config import load_config

README = Path(__file__).resolve().parents[1] / "README.md"
PLACEHOLDERS = {"$PRED": "/data/predictions", "<run-id>": "some-run", "$SLURM_JOB_ID": "1"}


def readme_run_commands() -> list[str]:
    """The override part of each `-m benchmark run` command in the README's code blocks (continued lines joined;
    generic forms such as `method=NAME` or `...` left out)."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0]
            if "benchmark run" not in line or "..." in line or "NAME" in line:
                continue
            for placeholder, value in PLACEHOLDERS.items():
                line = line.replace(placeholder, value)
            commands.append(line.split("benchmark run", 1)[1].strip())
    return commands


def combinations(overrides: list[str]) -> list[list[str]]:
    """Each job of a Hydra sweep (`a=1,2 b=x,y`), split as `benchmark run -m` splits it."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("hydra")])
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


COMMANDS = readme_run_commands()


def test_the_readme_has_run_commands():
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_run_command_is_a_valid_configuration(command):
    args = shlex.split(command)
    if {"-h", "--help", "--cfg"} & set(args):  # help and --cfg job run nothing: run them as written
        from benchmark.__main__ import main

        assert main(["run", *args]) == 0
        return
    sweep = "-m" in args or "--multirun" in args
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    assert all("=" in a for a in overrides), command
    for job in combinations(overrides) if sweep else [overrides]:
        load_config(job)


def test_readme_names_only_existing_subcommands():
    from benchmark.__main__ import SUBCOMMANDS

    named = set(re.findall(r"-m benchmark ([a-z][a-z-]*)", README.read_text()))
    assert {"run", "export-predictions", "prepare", "perf", "miou", "pq"} <= named
    assert named <= set(SUBCOMMANDS), sorted(named - set(SUBCOMMANDS))


def readme_list_commands() -> list[list[str]]:
    """The README's `benchmark list ...` commands (the generic `[methods|streams|models]` form left out)."""
    lines = re.findall(r"(?:-m benchmark|covseg) (list[^#`\n]*)", README.read_text())
    return [shlex.split(line) for line in lines if "[" not in line]


@pytest.mark.parametrize("command", readme_list_commands(), ids=" ".join)
def test_readme_list_commands_run_as_written(command, capsys):
    from benchmark.__main__ import main

    assert main(command) == 0 and capsys.readouterr().out
