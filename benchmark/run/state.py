"""A run folder's state stays true when its process is stopped from outside.

- SIGTERM (what SLURM sends at a time limit or on preemption, and `kill`'s default) and SIGHUP (the terminal
  closed) raise `Terminated` in the main thread while a run goes on (`interrupt_on_signals`): the run unwinds
  as it does on Ctrl-C, its manifest says `interrupted`, and the process exits with 128 + the signal number.
- A process that cannot write any more (SIGKILL, the out-of-memory killer, a disk too full for the manifest)
  leaves `running` behind. The manifest records which process that was (`process_identity`), so a reader on
  the same host shows such a run as `stale` (`Manifest.observed_status`) instead of as running.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(BaseException):
    """A termination signal arrived. A BaseException, like KeyboardInterrupt, so that a method's own
    `except Exception` does not swallow it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise `Terminated`, unless they were ignored (`nohup` ignores
    SIGHUP: a run started so keeps going when its terminal closes). The first signal puts the previous handlers
    back, so a second one acts as it would have (by default: the process ends at once). Only the main thread
    may set handlers; elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):
        for number, action in previous.items():
            signal.signal(number, action)
        raise Terminated(signum)

    previous.update({number: signal.signal(number, handler) for number in SIGNALS
                     if signal.getsignal(number) is not signal.SIG_IGN})
    try:
        yield
    finally:
        for number, action in previous.items():
            signal.signal(number, action)


def _stat(pid: int) -> tuple[str, int] | None:
    """Process `pid`'s state letter (Z: a zombie, ended) and start time (clock ticks after boot), from
    /proc/PID/stat fields 3 and 22; None without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # from field 3, after "(comm)"
    except OSError:
        return None
    return fields[0], int(fields[19])


def process_identity() -> dict:
    """This process as the manifest records it: host, pid and start time (a later process may reuse the pid)."""
    stat = _stat(os.getpid())
    return {"host": socket.gethostname(), "pid": os.getpid(), "start_ticks": stat[1] if stat else None}


def process_gone(process: dict) -> bool:
    """True when the recorded process has certainly ended: it ran on this host and no process has its pid, or
    the one that has it is a zombie or started at another time. A process of another host cannot be checked:
    False."""
    if not process or process.get("host") != socket.gethostname() or not process.get("pid"):
        return False
    pid = int(process["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        pass
    stat = _stat(pid)
    if stat is None:
        return False
    state, ticks = stat
    return state == "Z" or (process.get("start_ticks") is not None and ticks != process["start_ticks"])
