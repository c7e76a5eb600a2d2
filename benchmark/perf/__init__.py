"""`python -m benchmark perf NAME ...`: micro-benchmarks; `perf NAME` runs `benchmark.perf.NAME:main(rest)`."""

from __future__ import annotations

import importlib
import pkgutil

from benchmark.errors import UserError
from benchmark.registry import suggest


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(__path__))
    if not argv or argv[0] not in names:
        given = argv[0] if argv else ""
        raise UserError(f"perf needs a benchmark name{suggest(given, names)}; available: {', '.join(names)}")
    return importlib.import_module(f"benchmark.perf.{argv[0]}").main(argv[1:])
