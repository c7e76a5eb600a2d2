"""Ending everything a method's worker started with the worker. The worker runs in a session (and process
group) of its own, so the terminal's signals reach the parent only; the parent makes itself a child
subreaper (Linux), so a process the worker forked and left behind (a double fork, a `setsid` of its own) is
re-parented to the parent instead of init, and `end_descendants` kills every such process when the run ends."""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans() -> None:
    """Make this process the reaper of its descendants' orphans (Linux 3.4+; elsewhere nothing)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def children() -> set[int]:
    """The ids of this process's child processes (from /proc; empty where there is none)."""
    me, found = os.getpid(), set()
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == me:
            found.add(int(entry.parent.name))
    return found


def _foreign_children(before: set[int]) -> set[int]:
    """This process's children that are new since `before` and in another session than this one: a worker's
    orphans (the parent's own helpers, such as data loader workers, share its session)."""
    mine, found = os.getsid(0), set()
    for pid in children() - before:
        try:
            if os.getsid(pid) != mine:
                found.add(pid)
        except ProcessLookupError:
            continue
    return found


def end_descendants(group: int, before: set[int]) -> None:
    """Kill process group `group` (the worker's session) and every orphan of it re-parented here (children of
    this process not in `before`, the children it had when the worker started, and in another session), then
    reap them; repeated while new ones appear (an orphan may fork before it is killed)."""
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for _ in range(50):
        strays = _foreign_children(before)
        if not strays:
            return
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        time.sleep(0.01)
