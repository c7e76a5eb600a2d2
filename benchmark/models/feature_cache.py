"""Caches of per-image features of frozen models (segmenter proposals and embeddings, dense features,
embedder outputs): in memory, least recently used entries evicted beyond a byte budget (`MemoryCache`), and
on disk (`FeatureCache`).

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
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data.types import Sample
from benchmark.io import atomic_save_npz

FEATURES_VERSION = 2  # bump when the computation of cached features changes, so old entries are not reused


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


def directory_bytes(directory: Path | str | None) -> int:
    """Bytes of the files under `directory` (0 when it does not exist): the disk cache's reported size."""
    if directory is None or not Path(directory).is_dir():
        return 0
    return sum(path.stat().st_size for path in Path(directory).rglob("*") if path.is_file())


class MemoryCache:
    """Values by key in memory, at most `max_bytes` in all (`nbytes(value)` each): a new entry evicts the least
    recently used ones; a value larger than the whole budget is not kept. Hits, misses and evictions are counted
    for the run's report."""

    def __init__(self, max_bytes: int, nbytes) -> None:
        self.max_bytes = max_bytes
        self._nbytes = nbytes
        self._entries: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self.bytes = 0  # held now
        self.peak_bytes = 0
        self.hits = self.misses = self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[0]

    def peek(self, key: str) -> Any | None:
        """The value without counting a lookup or refreshing its recency."""
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def put(self, key: str, value: Any) -> None:
        size = int(self._nbytes(value))
        if key in self._entries:
            self.bytes -= self._entries.pop(key)[1]
        if size > self.max_bytes:
            return
        while self.bytes + size > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted
            self.evictions += 1
        self._entries[key] = (value, size)
        self.bytes += size
        self.peak_bytes = max(self.peak_bytes, self.bytes)

    def report(self) -> dict[str, int]:
        return {"entries": len(self), "bytes": self.bytes, "peak_bytes": self.peak_bytes, "hits": self.hits,
                "misses": self.misses, "evictions": self.evictions}
