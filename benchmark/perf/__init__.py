"""`python -m benchmark perf NAME ...`: micro-benchmarks; `perf NAME` runs `benchmark.perf.NAME:main(rest)`,
`perf -h` lists them, `perf NAME -h` shows one's options."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import textwrap
from pathlib import Path

from benchmark.errors import UserError
from benchmark.registry import suggest


def timed_run(overrides: list[str]) -> tuple[Path, object, float]:
    """One `run` in this process: its folder, its RunContext (the perf commands read the method's host and its
    counters from it) and its wall seconds."""
    import time

    from benchmark import runner
    from benchmark.config import load_config

    captured = {}
    prepare_run = runner.prepare_run

    def capture(cfg):
        captured["ctx"] = prepare_run(cfg)
        return captured["ctx"]

    runner.prepare_run = capture
    try:
        started = time.perf_counter()
        run_dir = runner.run_stream(load_config(overrides))
        return run_dir, captured["ctx"], time.perf_counter() - started
    finally:
        runner.prepare_run = prepare_run


def summary(name: str) -> str:
    """The first sentence of a benchmark module's docstring, read from its source (nothing imported: some import
    torch)."""
    text = ast.get_docstring(ast.parse((Path(__file__).parent / f"{name}.py").read_text())) or ""
    text = re.sub(r"^`[^`]*`:\s*", "", " ".join(text.split("\n\n")[0].split()))
    return re.split(r"(?<=\.)\s", text, maxsplit=1)[0].rstrip(".")


def usage(names: list[str]) -> str:
    lines = ["usage: python -m benchmark perf NAME [options]   (perf NAME -h: its options)", "", "benchmarks:"]
    for name in names:
        lines += textwrap.wrap(summary(name), width=110, initial_indent=f"  {name:12s}", subsequent_indent=" " * 14)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(__path__))
    if argv[:1] in (["-h"], ["--help"]):
        print(usage(names))
        return 0
    if not argv or argv[0] not in names:
        given = argv[0] if argv else ""
        raise UserError(f"perf needs a benchmark name{suggest(given, names)}; available: {', '.join(names)}")
    return importlib.import_module(f"benchmark.perf.{argv[0]}").main(argv[1:])
