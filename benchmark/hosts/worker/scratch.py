"""The worker's scratch folder as the parent sees it: a folder it made and holds open, whose state files it
reads and writes by plain names only (`state-<n>.faiss` / `state-<n>.rows`), relative to the folder it opened
and never through a symbolic link, so no name or link a worker chooses reaches a file outside it."""
from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

import numpy as np

from benchmark.disk_rows import DiskRows
from benchmark.errors import UserError

STATE_FILE = re.compile(r"state-[0-9]{1,6}\.(faiss|rows)")


class ScratchError(UserError):
    """A state file name or file the worker gave is not a plain file of its scratch folder."""


def state_file_name(name: object, who: str) -> str:
    if not isinstance(name, str) or not STATE_FILE.fullmatch(name):
        raise ScratchError(f"{who}: state file name {name!r} is not a plain name state-<n>.faiss|rows")
    return name


class Scratch:
    """A new private folder (`path`), opened once: every later access goes through that descriptor, so a
    worker that renames the folder or puts a link in its place redirects nothing. `owner`: (uid, gid) of a
    worker that runs as another user (root's worker drops to one): the folder and the state files put
    there are its."""

    def __init__(self, owner: tuple[int, int] | None = None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="covseg-worker-"))
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self.owner = owner
        if owner is not None:
            os.fchown(self.fd, *owner)

    def take(self, name: str, who: str) -> DiskRows:
        """The bytes of state file `name` as a byte store of the parent's own; the file is removed."""
        name = state_file_name(name, who)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError as exc:
            raise ScratchError(f"{who}: state file {name} is not a file of its scratch folder "
                               f"({exc.strerror})") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                raise ScratchError(f"{who}: state file {name} is not a plain file of its own (a link or device)")
            rows = DiskRows((1,), np.uint8)
            with os.fdopen(fd, "rb", closefd=False) as source:
                shutil.copyfileobj(source, rows.file)
            rows.count = rows.file.tell()
        finally:
            os.close(fd)
        os.unlink(name, dir_fd=self.fd)  # the name itself, never what it points to
        return rows

    def put(self, name: str, rows: DiskRows, who: str) -> None:
        """Write `rows` to a new file `name` (whatever the worker left under that name is removed first)."""
        name = state_file_name(name, who)
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            pass
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, 0o600, dir_fd=self.fd)
        except OSError as exc:
            raise ScratchError(f"{who}: cannot create state file {name} in its scratch folder "
                               f"({exc.strerror})") from None
        if self.owner is not None:
            os.fchown(fd, *self.owner)
        with os.fdopen(fd, "wb") as handle:
            rows.copy_to(handle)

    def remove(self) -> None:
        """Remove the folder's content through the descriptor (links removed, never followed), then the folder
        where it still is."""
        os.close(self.fd)
        shutil.rmtree(self.path, ignore_errors=True)  # shutil's fd-based rmtree: it follows no link
