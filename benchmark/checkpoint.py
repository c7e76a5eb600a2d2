"""Per-step checkpoints: after step t the method's state, the global RNG states and t are saved atomically
to `<run_dir>/checkpoint.pt`; a resumed run loads them and continues at step t + 1, so its summary equals that
of an uninterrupted run. The raw statistics of steps 0..t are already on disk (written before the checkpoint).
"""
from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import torch

from benchmark.errors import UserError
from benchmark.io import atomic_write_bytes

CHECKPOINT_FILE = "checkpoint.pt"


def rng_states() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])


def save_checkpoint(run_dir: Path, completed_step: int, method_state: dict) -> None:
    buffer = io.BytesIO()
    torch.save({"completed_step": completed_step, "method": method_state, "rng": rng_states()}, buffer)
    atomic_write_bytes(Path(run_dir) / CHECKPOINT_FILE, buffer.getvalue())


def load_checkpoint(run_dir: Path) -> dict | None:
    """The last checkpoint of a run folder, or None when no step completed yet."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        # our own file, written by save_checkpoint: it holds numpy arrays and RNG tuples, hence weights_only=False
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise UserError(f"cannot read checkpoint {path}: {exc}; start a new run instead of resuming") from None
