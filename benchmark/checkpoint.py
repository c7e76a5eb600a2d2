"""Per-step checkpoints: after step t the method's state, the global RNG states and t are saved atomically
to `<run_dir>/checkpoint.pt`; a resumed run loads them and continues at step t + 1, so its summary equals that
of an uninterrupted run. The raw statistics of steps 0..t are already on disk (written before the checkpoint).

Memory stays O(state in memory), never O(what lives on disk): the state is written straight to a temporary
file (no in-memory copy of the whole pickle), tensors are written from their own storage, faiss indexes in
the state (kNN-CLIP's database) go to side files `checkpoint-<t>-<n>.faiss` through faiss's own writer, and
disk-backed row stores (`DiskRows`: joint's training store) are streamed to side files
`checkpoint-<t>-<n>.rows` a chunk at a time. The checkpoint names its side files, and the previous step's are
removed once the new checkpoint is in place. Loading gives a new index / a new store holding a copy.
"""
from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.disk_rows import DiskRows
from benchmark.errors import UserError

CHECKPOINT_FILE = "checkpoint.pt"


def rng_states() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])


def _is_faiss_index(value: Any) -> bool:
    faiss = sys.modules.get("faiss")  # only states of runs that imported faiss can hold an index
    return faiss is not None and isinstance(value, faiss.Index)


def _externalise(value: Any, write) -> Any:
    """`value` with every faiss index replaced by {"__faiss_index__": file name} and every DiskRows by
    {"__disk_rows__": file name, its row shape, dtype and count} (`write(suffix, save)` -> the file name,
    `save(path)` writing the file)."""
    if _is_faiss_index(value):
        import faiss

        return {"__faiss_index__": write("faiss", lambda path: faiss.write_index(value, str(path)))}
    if isinstance(value, DiskRows):
        def save_rows(path: Path) -> None:
            with open(path, "wb") as handle:
                value.copy_to(handle)

        return {"__disk_rows__": write("rows", save_rows), "row_shape": list(value.row_shape),
                "dtype": value.dtype.str, "count": len(value)}
    if isinstance(value, dict):
        return {key: _externalise(item, write) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_externalise(item, write) for item in value)
    return value


def _internalise(value: Any, directory: Path) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__faiss_index__"}:
            import faiss

            return faiss.read_index(str(directory / value["__faiss_index__"]))
        if "__disk_rows__" in value:
            return DiskRows.from_file(directory / value["__disk_rows__"], tuple(value["row_shape"]),
                                      np.dtype(value["dtype"]), int(value["count"]))
        return {key: _internalise(item, directory) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_internalise(item, directory) for item in value)
    return value


def save_checkpoint(run_dir: Path, completed_step: int, method_state: dict) -> None:
    run_dir = Path(run_dir)
    written: list[str] = []

    def write_side_file(suffix: str, save) -> str:
        name = f"checkpoint-{completed_step}-{len(written)}.{suffix}"
        save(run_dir / name)
        with open(run_dir / name, "rb+") as handle:  # on disk before checkpoint.pt names it
            os.fsync(handle.fileno())
        written.append(name)
        return name

    state = {"completed_step": completed_step, "method": _externalise(method_state, write_side_file), "rng": rng_states()}
    fd, tmp = tempfile.mkstemp(prefix=f".{CHECKPOINT_FILE}.", suffix=".tmp", dir=run_dir)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, run_dir / CHECKPOINT_FILE)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    for old in run_dir.glob("checkpoint-*"):  # the previous step's side files
        if old.name not in written:
            old.unlink()


def load_checkpoint(run_dir: Path) -> dict | None:
    """The last checkpoint of a run folder, or None when no step completed yet."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        # our own file, written by save_checkpoint: it holds numpy arrays and RNG tuples, hence weights_only=False
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        return {**checkpoint, "method": _internalise(checkpoint["method"], Path(run_dir))}
    except Exception as exc:
        raise UserError(f"cannot read checkpoint {path}: {exc}; start a new run instead of resuming") from None
