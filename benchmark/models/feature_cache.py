"""Disk cache of per-image features of frozen models (segmenter proposals and embeddings, embedder outputs).

A validation image is segmented after every step of a stream, by every training-free method, in every run;
its frozen features never change, so they are computed once per (model, image) and reused from disk.

Layout: `<root>/<namespace>/<key[:2]>/<key>.npz`, where `namespace` is a digest of everything that changes
the features (model config, weights seed, code version) and `key` a digest of the image (id, size and pixel
content, so two datasets reusing an image id never collide). Writes are atomic (temporary file, then
rename): two processes writing the same key both write the same bytes and the last rename wins; a reader
never sees a partial file. A file that cannot be read is treated as missing and recomputed.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data.types import Sample
from benchmark.io import atomic_save_npz

FEATURES_VERSION = 1  # bump when the computation of cached features changes, so old entries are not reused


def config_digest(config: dict[str, Any]) -> str:
    """Stable short digest of a JSON-serialisable description of a model."""
    text = json.dumps({"features_version": FEATURES_VERSION, **config}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def image_key(sample: Sample) -> str:
    """Digest of an image: its id, size and pixels."""
    digest = hashlib.sha1(f"{sample.image_id}:{sample.height}x{sample.width}:".encode())
    digest.update(np.ascontiguousarray(sample.image).data)
    return digest.hexdigest()


class FeatureCache:
    """Arrays per image under one namespace; `root=None` disables the disk (every lookup misses)."""

    def __init__(self, root: Path | str | None, namespace: str) -> None:
        self.directory = Path(root) / namespace if root is not None else None
        self.hits = 0  # lookups answered from disk
        self.writes = 0  # entries written

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        if self.directory is None:
            return None
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError):  # unreadable (e.g. a foreign file): recompute
            return None
        self.hits += 1
        return arrays

    def put(self, key: str, **arrays: np.ndarray) -> None:
        if self.directory is None:
            return
        atomic_save_npz(self._path(key), **arrays)
        self.writes += 1
