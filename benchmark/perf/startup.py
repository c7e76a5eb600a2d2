"""`python -m benchmark perf startup [--repeat N] [results_dir=PATH]`: wall time of the commands that run no
model, each a fresh `python -m benchmark ...` process (best of N), beside two references measured in the same
run: the bare interpreter (`python -c pass`) and `python -c "import torch"` (what a command that imports
everything up front pays at least). Budget: 2 s per command. `results_dir=PATH` adds a real `leaderboard` over
the runs there (it rewrites PATH/LEADERBOARD.md, as `leaderboard` does)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from benchmark.errors import UserError

BUDGET_SECONDS = 2.0
COMMANDS = [["--help"], ["list"], ["list", "methods", "-v"], ["run", "--help"], ["run", "method=replay", "-h"],
            ["leaderboard", "--help"], ["leaderboard", "results_dir=/nonexistent-covseg-results"]]


def best_wall(argv: list[str], repeat: int) -> tuple[float, int]:
    """Best wall-clock seconds of `repeat` runs of argv and the last exit code."""
    best, code = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        code = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        best = min(best, time.perf_counter() - started)
    return best, code


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark perf startup", description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="runs per command; the best counts")
    parser.add_argument("options", nargs="*", help="results_dir=PATH: also time a real leaderboard")
    args = parser.parse_args(argv)
    commands = list(COMMANDS)
    for option in args.options:
        key, _, value = option.partition("=")
        if key != "results_dir" or not value:
            raise UserError(f"perf startup takes --repeat N and results_dir=PATH, got '{option}'")
        commands.append(["leaderboard", f"results_dir={value}"])
    python = [sys.executable]
    with tempfile.TemporaryDirectory() as cwd:  # nothing the commands write lands in the caller's folder
        os.chdir(cwd)
        floor, _ = best_wall([*python, "-c", "pass"], args.repeat)
        torch_import, _ = best_wall([*python, "-c", "import torch"], args.repeat)
        print(f"references (best of {args.repeat}): python -c pass {floor:.2f} s; python -c 'import torch' "
              f"{torch_import:.2f} s")
        print(f"{'command':62s} {'seconds':>8s} {'/ import torch':>14s}  budget {BUDGET_SECONDS:.0f} s")
        over = 0
        for command in commands:
            seconds, code = best_wall([*python, "-m", "benchmark", *command], args.repeat)
            over += seconds > BUDGET_SECONDS
            verdict = "ok" if seconds <= BUDGET_SECONDS else "OVER"
            print(f"{'benchmark ' + ' '.join(command):62s} {seconds:8.2f} {seconds / torch_import:14.2f}  {verdict}"
                  f"{'' if code in (0, 2) else f' (exit {code})'}")
    return 1 if over else 0
