"""Progress bars with ETA for long loops and one line per finished step; `quiet=true` silences the bars.

tqdm writes to stderr and redraws in place on a terminal; when stderr is not a terminal (logs, CI) bars are
updated rarely (mininterval) so files are not flooded with carriage-return frames.
"""
from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

from tqdm import tqdm

T = TypeVar("T")


class Progress:
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.interactive = sys.stderr.isatty()

    def bar(self, iterable: Iterable[T], desc: str = "", total: int | None = None) -> Iterator[T]:
        return iter(tqdm(iterable, desc=desc, total=total, disable=self.quiet, leave=False, dynamic_ncols=True,
                         mininterval=0.1 if self.interactive else 30.0, file=sys.stderr))

    def log(self, line: str) -> None:
        """A line that stays (above any live bar)."""
        tqdm.write(line, file=sys.stdout)
