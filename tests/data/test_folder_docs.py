"""docs/folder-dataset.md as written: its worked example (the script, then each command) runs in a fresh folder,
and every `benchmark run` command of the page composes into a valid configuration."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "folder-dataset.md"


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def commands(text: str) -> list[list[str]]:
    """The arguments after `python -m benchmark` of each command line in the bash blocks of `text`."""
    found = []
    for block in blocks(text, "bash"):
        for line in block.splitlines():
            if line.startswith("python -m benchmark "):
                found.append(shlex.split(line)[3:])
    return found


def test_every_run_command_of_the_page_is_a_valid_configuration():
    from benchmark.config import load_config

    runs = [args[1:] for args in commands(PAGE.read_text()) if args[0] == "run"]
    assert len(runs) >= 4
    for overrides in runs:
        cfg = load_config(overrides)
        assert cfg.stream.dataset in ("folder", "folder_panoptic") and cfg.stream.path == "mydata"


def test_the_worked_example_runs(tmp_path, monkeypatch, capsys):
    from benchmark.__main__ import main

    example = PAGE.read_text().split("## Worked example", 1)[1]
    monkeypatch.chdir(tmp_path)
    (script,) = blocks(example, "python")
    exec(compile(script, str(PAGE), "exec"), {})
    steps = commands(example)
    assert [args[0] for args in steps] == ["prepare", "streams", "run", "leaderboard"]
    for args in steps:
        extra = ["quiet=true"] if args[0] == "run" else []
        assert main(args + extra) == 0, args
    out = capsys.readouterr().out
    assert "4 classes, 6 train and 3 val images checked" in out and "step 1:" in out and "knnclip" in out
    assert list((tmp_path / "results" / "folder" / "knnclip").iterdir())

