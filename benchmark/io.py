"""Atomic file writes: a temporary file in the same folder, fsync, then rename over the target.

A reader therefore sees either the previous complete file or the new complete file, never a partial one,
even if the process is killed mid-write or the disk fills up (the temporary file is removed, and a full disk
is reported in one line naming the folder). Files get the permissions of the user's umask (collaborators can
read run folders), not tempfile's private 0600.
"""
from __future__ import annotations

import errno
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

from benchmark.errors import UserError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)  # a full disk, an exhausted quota


def current_umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_stream(path: Path, save: Callable[[BinaryIO], Any]) -> None:
    """`save(handle)` writes the file's content to an open binary file (a temporary one, renamed to `path`
    once complete and synced to disk)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates 0600; a file should be as open() makes it
        with os.fdopen(fd, "wb") as handle:
            save(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            raise UserError(f"no space left on the device of {path.parent} (writing {path.name}): free space "
                            "there or write elsewhere") from exc
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write_stream(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def finite(value: Any) -> Any:
    """NaN -> None (in lists and dicts too), so the JSON written is strict."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [finite(v) for v in value]
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return value


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, default=_json_default) + "\n")


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def cache_home() -> Path:
    """$XDG_CACHE_HOME/covseg-bench (~/.cache/covseg-bench): every disk cache of the harness lives here, never under
    the data root, so shared read-only dataset folders stay as they are."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "covseg-bench"
