"""`python -m benchmark perf NAME ...` runs `benchmark.perf.NAME.main(rest)` (eval, data, retrieval)."""
from __future__ import annotations

import importlib

from benchmark.errors import UserError

BENCHMARKS = ("eval", "data", "retrieval")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        raise UserError(f"usage: python -m benchmark perf {{{'|'.join(BENCHMARKS)}}} [options]")
    return importlib.import_module(f"benchmark.perf.{argv[0]}").main(argv[1:])
