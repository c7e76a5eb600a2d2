"""Per-step checkpoints: after step t the method's state, the global RNG states and t are saved atomically
to `<run_dir>/checkpoint.pt`; a resumed run loads them and continues at step t + 1, so its summary equals that
of an uninterrupted run. The raw statistics of steps 0..t are already on disk (written before the checkpoint).

Memory stays O(state in memory), never O(what lives on disk): the state is written straight to a temporary
file (no in-memory copy of the whole pickle), tensors are written from their own storage, faiss indexes in
the state (kNN-CLIP's database) go to side files `checkpoint-<t>-<n>.faiss` through faiss's writer, and
disk-backed row stores (`DiskRows`: joint's training store) are streamed to side files
`checkpoint-<t>-<n>.rows` a chunk at a time. The checkpoint names its side files, and the previous step's are
removed once the new checkpoint is in place. Every file is written under a temporary name and renamed when
whole (benchmark.io). Loading gives a new index / a new store holding a copy.

`checkpoint.keep` says which steps a run folder keeps: `last` (default) the one `checkpoint.pt` above, replaced
after every step; `all` one folder per completed step, `checkpoints/step_NNN/`, each holding that step's
`checkpoint.pt` and side files in the same format (what `show --steps 0,1,2` restores). A run resumes from the
latest either way (`load_checkpoint`).
"""
from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.disk_rows import DiskRows
from benchmark.errors import UserError
from benchmark.io import atomic_write_stream

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINTS_DIR = "checkpoints"  # checkpoint.keep=all: checkpoints/step_NNN/ for every completed step


def checkpoint_dir(run_dir: Path, step: int, keep: str) -> Path:
    """The folder that holds step `step`'s checkpoint: the run folder (keep=last) or its own (keep=all)."""
    return Path(run_dir) if keep == "last" else Path(run_dir) / CHECKPOINTS_DIR / f"step_{step:03d}"


def kept_steps(run_dir: Path) -> dict[int, Path]:
    """Step -> the folder of its checkpoint, for every step a keep=all run folder kept whole (a step folder
    without its checkpoint.pt was cut short: not kept). {} for a keep=last folder."""
    folders = sorted(Path(run_dir).glob(f"{CHECKPOINTS_DIR}/step_[0-9][0-9][0-9]/{CHECKPOINT_FILE}"))
    return {int(path.parent.name[len("step_"):]): path.parent for path in folders}


def rng_states() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])


def _is_faiss_index(value: Any) -> bool:
    faiss = sys.modules.get("faiss")  # only states of runs that imported faiss can hold an index
    return faiss is not None and isinstance(value, faiss.Index)


def externalise(value: Any, write) -> Any:
    """`value` with every faiss index replaced by {"__faiss_index__": file name} and every DiskRows by
    {"__disk_rows__": file name, its row shape, dtype and count} (`write(suffix, save)` -> the file name,
    `save(handle)` writing the file's content to an open binary file)."""
    if _is_faiss_index(value):
        import faiss

        def save_index(handle) -> None:  # through Python's file object: faiss's own file writer only prints
            faiss.write_index(value, faiss.PyCallbackIOWriter(handle.write))  # a failed final flush (disk full)

        return {"__faiss_index__": write("faiss", save_index)}
    if isinstance(value, DiskRows):
        return {"__disk_rows__": write("rows", value.copy_to), "row_shape": list(value.row_shape),
                "dtype": value.dtype.str, "count": len(value)}
    if isinstance(value, dict):
        return {key: externalise(item, write) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(externalise(item, write) for item in value)
    return value


def internalise(value: Any, directory: Path) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__faiss_index__"}:
            import faiss

            return faiss.read_index(str(directory / value["__faiss_index__"]))
        if "__disk_rows__" in value:
            return DiskRows.from_file(directory / value["__disk_rows__"], tuple(value["row_shape"]),
                                      np.dtype(value["dtype"]), int(value["count"]))
        return {key: internalise(item, directory) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(internalise(item, directory) for item in value)
    return value


def save_checkpoint(folder: Path, completed_step: int, method_state: dict) -> None:
    """Every file is written under a temporary name and renamed once whole and on disk (side files before the
    checkpoint that names them), so a failure (a full disk: a one-line UserError) leaves the previous step's
    checkpoint as it was and nothing half-written. Each call saves a new step (the runner saves each once):
    its side files are new names, removed again when the save fails. `folder`: the run folder, or the step's own
    (`checkpoint_dir`, checkpoint.keep=all)."""
    folder = Path(folder)
    written: list[str] = []

    def write_side_file(suffix: str, save) -> str:
        name = f"checkpoint-{completed_step}-{len(written)}.{suffix}"
        atomic_write_stream(folder / name, save)
        written.append(name)
        return name

    try:
        state = {"completed_step": completed_step, "method": externalise(method_state, write_side_file),
                 "rng": rng_states()}
        atomic_write_stream(folder / CHECKPOINT_FILE, lambda handle: torch.save(state, handle))
    except BaseException:
        for name in written:  # no checkpoint names them
            (folder / name).unlink(missing_ok=True)
        raise
    # the previous step's side files, and temporary files a killed process left
    for old in [*folder.glob("checkpoint-*"), *folder.glob(".checkpoint*.tmp")]:
        if old.name not in written:
            old.unlink()


def load_checkpoint(run_dir: Path) -> dict | None:
    """The last checkpoint of a run folder (its `checkpoint.pt`, or with checkpoint.keep=all the latest step's;
    a folder of `checkpoint_dir` gives its own step's), or None when no step completed yet."""
    folder = _latest_folder(run_dir)
    checkpoint = _read(folder / CHECKPOINT_FILE)
    if checkpoint is None:
        return None
    try:
        return {**checkpoint, "method": internalise(checkpoint["method"], folder)}
    except Exception as exc:
        raise UserError(f"cannot read checkpoint {folder / CHECKPOINT_FILE}: {_first_line(exc)}") from None


def checkpoint_step(run_dir: Path) -> int | None:
    """The step of `load_checkpoint(run_dir)`, without reading the method state's side files (faiss indexes,
    arrays); None when no step completed yet."""
    checkpoint = _read(_latest_folder(run_dir) / CHECKPOINT_FILE)
    return None if checkpoint is None else int(checkpoint["completed_step"])


def _latest_folder(run_dir: Path) -> Path:
    kept = kept_steps(run_dir)
    return kept[max(kept)] if kept else Path(run_dir)


def _read(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        # our own file, written by save_checkpoint: it holds numpy arrays and RNG tuples, hence weights_only=False
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise UserError(f"cannot read checkpoint {path}: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
