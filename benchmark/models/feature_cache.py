"""Caches of per-image features of frozen models (segmenter proposals and embeddings, dense features,
embedder outputs): in memory, least recently used entries evicted beyond a byte budget (`MemoryCache`), and
on disk (`FeatureCache`).

A validation image is segmented after every step of a stream, by every training-free method, in every run;
its frozen features never change, so they are computed once per (model, image) and reused from disk.

Layout: `<root>/<namespace>/<key[:2]>/<key>.npz`, where `namespace` is a digest of everything that changes
the features (model config, weights seed, code version) and `key` a digest of the image (id, size and pixel
content, so two datasets reusing an image id never collide). Writes are atomic (temporary file, then
rename): two processes writing the same key both write the same bytes and the last rename wins; a reader
never sees a partial file. Every entry carries a checksum of its namespace, key and arrays: an entry that
cannot be read, lacks it or does not match it (corrupt, moved from another key, written by other code) is
recomputed and rewritten, with one warning per cache. The checksum catches accidents and naive tampering,
not a writer that recomputes it with this module (only keeping other code away from the cache folder does).
"""
from __future__ import annotations

import hashlib
import json
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data.types import Sample
from benchmark.io import atomic_save_npz

FEATURES_VERSION = 3  # bump when the computation of cached features changes, so old entries are not reused
CHECKSUM = "_checksum"  # the entry's own array holding the checksum of the others


def config_digest(config: dict[str, Any]) -> str:
    """Stable short digest of a JSON-serialisable description of a model."""
    text = json.dumps({"features_version": FEATURES_VERSION, **config}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def weights_digest(module) -> str:
    """Digest of a model's parameters and buffers (names, dtypes, shapes, values): the weights' identity, so a
    different download, open_clip's initialisation or a seed all change the caches' namespace."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.data)
    return digest.hexdigest()[:16]


def image_key(sample: Sample, *inputs: np.ndarray) -> str:
    """Digest of an image: its id, size and pixels, and of any further `inputs` the cached value depends on
    (e.g. the oracle proposals drawn from a step's filtered labels)."""
    digest = hashlib.sha1(f"{sample.image_id}:{sample.height}x{sample.width}:".encode())
    for array in (sample.image, *inputs):
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def entry_checksum(namespace: str, key: str, arrays: dict[str, np.ndarray]) -> str:
    """sha256 of an entry's namespace, key and arrays (names, dtypes, shapes, values)."""
    digest = hashlib.sha256(f"{namespace}/{key}".encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"|{name}:{array.dtype.str}:{array.shape}|".encode())
        digest.update(array.data)
    return digest.hexdigest()


class FeatureCache:
    """Arrays per image under one namespace; `root=None` disables the disk (every lookup misses)."""

    def __init__(self, root: Path | str | None, namespace: str) -> None:
        self.namespace = namespace
        self.directory = Path(root) / namespace if root is not None else None
        self.hits = 0  # lookups answered from disk
        self.writes = 0  # entries written
        self.rejected = 0  # entries found unreadable or not matching their checksum (recomputed)

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
            with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:  # np.load(path) leaks
                arrays = {name: data[name] for name in data.files}  # its handle on a damaged zip
        except Exception as exc:  # zipfile, zlib and numpy raise several types for a damaged file
            return self._reject(path, f"unreadable ({type(exc).__name__})")
        stored = arrays.pop(CHECKSUM, None)
        if stored is None or str(stored) != entry_checksum(self.namespace, key, arrays):
            return self._reject(path, "no checksum" if stored is None else "checksum mismatch")
        self.hits += 1
        return arrays

    def _reject(self, path: Path, reason: str) -> None:
        """A bad entry is a miss (the caller recomputes and rewrites it); the first one of this cache warns."""
        if not self.rejected:
            warnings.warn(f"feature cache entry {path}: {reason}; recomputing it (and any other bad entry of "
                          f"{self.directory}, without further warnings)", stacklevel=3)
        self.rejected += 1
        return None

    def put(self, key: str, **arrays: np.ndarray) -> None:
        if self.directory is None:
            return
        checksum = entry_checksum(self.namespace, key, arrays)
        atomic_save_npz(self._path(key), **arrays, **{CHECKSUM: np.array(checksum)})
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
