"""A disk that fills up, for tests: files opened for writing through os.fdopen (every atomic write of
benchmark.io) share a byte budget, and writes beyond it fail with ENOSPC after writing what fitted."""
import contextlib
import errno
import os


class _FullDisk:
    """A file whose writes fail with ENOSPC once the (shared) byte budget is spent."""

    def __init__(self, handle, budget):
        self._handle, self._budget = handle, budget

    def write(self, data):
        size = len(memoryview(data).cast("B"))
        if size > self._budget[0]:
            self._handle.write(bytes(memoryview(data).cast("B")[: self._budget[0]]))  # what fitted
            self._budget[0] = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._budget[0] -= size
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


def fill_disk(free_bytes):
    """From now on, every file opened for writing with os.fdopen (the atomic writes of benchmark.io) shares
    `free_bytes` of space; beyond it, writes fail with ENOSPC. Returns the function that frees the disk."""
    real, budget = os.fdopen, [free_bytes]

    def fdopen(fd, mode="r", *args, **kwargs):
        handle = real(fd, mode, *args, **kwargs)
        return _FullDisk(handle, budget) if "w" in mode else handle

    os.fdopen = fdopen
    return lambda: setattr(os, "fdopen", real)


@contextlib.contextmanager
def full_disk(free_bytes):
    free = fill_disk(free_bytes)
    try:
        yield
    finally:
        free()
