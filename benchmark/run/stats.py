"""The raw statistics of a run folder, <run>/stats/: their file names and readers. RunWriter writes them (one
step_NNN.npz + step_NNN.json per step, initial.npz + initial.json for the initial evaluation); every derived
number (benchmark.evaluation.summary) is recomputed from them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

STATS_DIR = "stats"
INITIAL_STATS = "initial.npz"  # stats/ file of the initial evaluation (never matches step_*.npz)


def step_stats_file(step: int) -> str:
    return f"step_{step:03d}.npz"


def load_initial_stats(run_dir: Path) -> dict[str, np.ndarray] | None:
    path = Path(run_dir) / STATS_DIR / INITIAL_STATS
    return dict(np.load(path)) if path.is_file() else None


def load_step_stats(run_dir: Path) -> list[dict[str, np.ndarray]]:
    files = sorted((Path(run_dir) / STATS_DIR).glob("step_*.npz"))
    return [dict(np.load(f)) for f in files]


def load_step_records(run_dir: Path) -> list[dict]:
    """The per-step records (stats/step_NNN.json: learn / eval seconds, memory bytes, ...), in step order."""
    return [json.loads(p.read_text()) for p in sorted((Path(run_dir) / STATS_DIR).glob("step_*.json"))]


def load_confusions(run_dir: Path) -> list[np.ndarray]:
    return [stats["confusion"] for stats in load_step_stats(run_dir)]
