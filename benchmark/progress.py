"""Progress bars with ETA for long loops and one line per finished step; `quiet=true` silences the bars.

On a terminal tqdm redraws one bar in place on stderr. When stderr is not a terminal (log files, CI, batch
jobs) carriage-return redraws would garble the file, so bars there only appear for loops that run longer
than `LOG_INTERVAL` seconds, as one plain ASCII line per interval (position, rate and ETA). Step lines
(`Progress.log`) go to stdout and stay above any live bar.
"""
from __future__ import annotations

import sys
from typing import Iterable, Iterator, TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")
LOG_INTERVAL = 30.0  # seconds between progress lines when stderr is not a terminal


class LineWriter:
    """A file for tqdm that turns each in-place redraw ("\\r" + frame) into one finished line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        frame = text.replace("\r", "").rstrip()
        if frame:
            self.stream.write(frame + "\n")

    def flush(self) -> None:
        self.stream.flush()


class Progress:
    prefix = ""  # put before every line and bar of this process (the job of a Hydra multirun: benchmark.cli)

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream  # None: sys.stderr at the time a bar starts (so pytest's capture is honoured)

    def bar(self, iterable: Iterable[T], desc: str = "", total: int | None = None) -> Iterator[T]:
        stream = self.stream or sys.stderr
        desc = self.prefix + desc
        if _isatty(stream):
            return iter(tqdm(iterable, desc=desc, total=total, disable=self.quiet, leave=False, dynamic_ncols=True,
                             mininterval=0.1, file=stream))
        return iter(tqdm(iterable, desc=desc, total=total, disable=self.quiet, leave=False, ascii=True, ncols=100,
                         mininterval=LOG_INTERVAL, delay=LOG_INTERVAL, file=LineWriter(stream)))

    def log(self, line: str) -> None:
        """A line that stays (above any live bar)."""
        tqdm.write("\n".join(self.prefix + part for part in line.split("\n")), file=sys.stdout)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or file-like objects without isatty
        return False
