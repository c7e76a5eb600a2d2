"""Equal-shaped rows of an array kept in an anonymous temporary file instead of memory: the learning
baselines' training stores (baselines/trainable.py, baselines/joint.py) live here, so their memory does not
grow with the number of training images. Rows are written with `write`/`pwrite` and read back by index with
`pread`: the bytes sit in the OS page cache, which the kernel reclaims, not in the process's heap.

A checkpoint streams a store to a side file and a resumed run streams it back into a fresh temporary file
(`copy_to` / `from_file`, a chunk at a time), so saving and restoring take O(chunk) memory, not O(store).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

COPY_CHUNK = 4 * 2**20  # bytes per read/write when a store is copied to or from a file


class DiskRows:
    """Rows of shape `row_shape` and dtype `dtype`, appended, overwritten and read back by index."""

    def __init__(self, row_shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.row_shape = tuple(int(n) for n in row_shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.row_shape)) * self.dtype.itemsize
        self.file = tempfile.TemporaryFile(prefix="covseg-rows-")  # deleted when closed (or the process ends)
        self.count = 0

    def __len__(self) -> int:
        return self.count

    @property
    def nbytes(self) -> int:
        return self.count * self.row_bytes

    def append(self, rows: np.ndarray) -> None:
        self.file.seek(self.count * self.row_bytes)
        self.file.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
        self.count += len(rows)

    def write(self, index: int, row: np.ndarray) -> None:
        """Overwrite row `index`."""
        self.file.flush()  # appends go through the file object's buffer: let them land before the pwrite
        os.pwrite(self.file.fileno(), np.ascontiguousarray(row, dtype=self.dtype).tobytes(), index * self.row_bytes)

    def read(self, indices) -> np.ndarray:
        """(len(indices), *row_shape) rows in the order asked."""
        self.file.flush()
        out = np.empty((len(indices), *self.row_shape), dtype=self.dtype)
        for i, index in enumerate(np.asarray(indices, dtype=np.int64).reshape(-1)):
            out[i] = np.frombuffer(os.pread(self.file.fileno(), self.row_bytes, int(index) * self.row_bytes),
                                   dtype=self.dtype).reshape(self.row_shape)
        return out

    def copy_to(self, handle: BinaryIO) -> None:
        """Write every row, in order, to an open binary file (a chunk at a time)."""
        self.file.flush()
        remaining, offset = self.nbytes, 0
        while remaining:
            chunk = os.pread(self.file.fileno(), min(COPY_CHUNK, remaining), offset)
            handle.write(chunk)
            offset += len(chunk)
            remaining -= len(chunk)

    def copy(self) -> "DiskRows":
        """A new store holding a copy of these rows."""
        rows = DiskRows(self.row_shape, self.dtype)
        self.copy_to(rows.file)
        rows.count = self.count
        return rows

    @classmethod
    def from_file(cls, path: Path, row_shape: tuple[int, ...], dtype: np.dtype, count: int) -> "DiskRows":
        """A new store holding a copy of the `count` rows that `copy_to` wrote to `path` (the file itself is
        not kept open or changed: writes to the store do not touch it)."""
        rows = cls(row_shape, dtype)
        with open(path, "rb") as source:
            size = os.fstat(source.fileno()).st_size
            if size != count * rows.row_bytes:
                rows.close()
                raise ValueError(f"{path} holds {size} bytes, not {count} rows of {rows.row_bytes} bytes")
            shutil.copyfileobj(source, rows.file, COPY_CHUNK)
        rows.count = count
        return rows

    def close(self) -> None:
        self.file.close()
