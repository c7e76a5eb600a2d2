"""The growing retrieval database: L2-normalised embeddings with their class ids, searched by inner product
(= cosine similarity).

`index=auto` (the default) searches exactly (faiss IndexFlatIP) while the database holds at most `exact_max`
entries, then builds a trained compressed index, IVF with 8-bit scalar-quantised codes (`auto_index_spec`: about
4·sqrt(N) lists; a quarter of float32's bytes), retrained on the whole database each time it has grown `RETRAIN_GROWTH`
times since the last training (a continual stream brings new classes, which old centroids fit badly). It keeps
a float16 copy of the vectors for retraining, and after every (re)training reports the agreement of the
majority label over k neighbours with exact search on a sample of the database (`index_reports`).
The switch-over size and the index were chosen by measurement (README, `perf stream` and `perf retrieval`).

Any faiss index factory string works too (`Flat`, `SQfp16` for half the bytes, `HNSW32`, `IVF4096,PQ128x4fs`
for ~70 bytes per entry, ...). Indexes that need training (IVF, PQ, SQ) are trained once, on the first
`train_size` vectors: until that many have arrived, entries are kept in an exact flat buffer (searched exactly,
so predictions work from the first step); then the index is trained on the first `train_size` of them and the
whole buffer moves into it. A stream that ends before `train_size` keeps its entries exact. `train_size=0` asks
for what the index needs to train well: 39 vectors per k-means centroid (faiss's own warning threshold) of the
IVF lists and of the PQ codebooks.

`backend=torch` searches exactly with torch (blocked matmul + top-k) on the method's device: the GPU path
(float16 vectors on CUDA), tested on CPU through the same code.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from benchmark.errors import UserError

MIN_POINTS_PER_CENTROID = 39  # faiss warns below this many training points per centroid
AUTO = "auto"
RETRAIN_GROWTH = 4  # index=auto retrains when the database has grown this many times since the last training
AGREEMENT_SAMPLE = 1000  # database entries used as queries for the agreement check after (re)training
SEARCH_BLOCK = 65_536  # backend=torch: database rows per matmul block


def _faiss():
    import faiss

    return faiss


def auto_index_spec(dim: int, entries: int) -> str:
    """The compressed index of index=auto for `entries` vectors of `dim`: IVF with a power of two near
    4·sqrt(N) lists (at least 39 training points each) and 8-bit scalar quantisation. Measured on the demo at
    scale 16 (README): PQ(dim/2)x4fs was as fast but agreed with exact search's majority label on 85% of
    entries and cost 5.7 mIoU points; SQ8 keeps the neighbours (recall@16 ~0.99 in `perf retrieval`)."""
    nlist = 2 ** int(round(np.log2(max(4 * np.sqrt(entries), 1))))
    while nlist > 1 and nlist * MIN_POINTS_PER_CENTROID > entries:
        nlist //= 2
    return f"IVF{nlist},SQ8"


def torch_topk(database: torch.Tensor, queries: torch.Tensor, k: int, block: int = SEARCH_BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact inner-product top-k by matmul + topk over database blocks, merged; (Q, k) scores and ids (-1 where
    the database has fewer than k rows). Runs on the tensors' device, in float32 on CPU."""
    compute = torch.float32 if database.device.type == "cpu" else database.dtype
    queries = queries.to(database.device, compute)
    best_scores = torch.full((len(queries), k), -torch.inf, device=database.device)
    best_ids = torch.full((len(queries), k), -1, dtype=torch.long, device=database.device)
    for start in range(0, len(database), block):
        scores = (queries @ database[start:start + block].to(compute).T).float()  # (Q, b)
        top = scores.topk(min(k, scores.shape[1]), dim=1)
        merged_scores = torch.cat([best_scores, top.values], dim=1)
        merged_ids = torch.cat([best_ids, top.indices + start], dim=1)
        keep = merged_scores.topk(k, dim=1).indices
        best_scores, best_ids = merged_scores.gather(1, keep), merged_ids.gather(1, keep)
    return best_scores.cpu(), best_ids.cpu()


def majority_labels(neighbour_labels: np.ndarray) -> np.ndarray:
    """(Q,) most frequent label per row (ties: the smallest label), ignoring -1."""
    out = np.empty(len(neighbour_labels), dtype=np.int64)
    for i, row in enumerate(neighbour_labels):
        row = row[row >= 0]
        out[i] = np.bincount(row).argmax() if len(row) else -1
    return out


def required_training_vectors(index) -> int:
    """Vectors to buffer before training `index` (0 for indexes that need no training)."""
    faiss = _faiss()
    if index.is_trained:
        return 0
    needed = 1
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        needed = max(needed, ivf.nlist * MIN_POINTS_PER_CENTROID)
    for part in (index, ivf):
        quantizer = getattr(faiss.downcast_index(part), "pq", None) if part is not None else None
        if quantizer is not None:
            needed = max(needed, quantizer.ksub * MIN_POINTS_PER_CENTROID)
    return needed


def index_bytes(index) -> int:
    """Bytes an index holds, without serialising it: codes (+ 8-byte ids for IVF lists) and the coarse
    quantizer; other index types (HNSW, ...) are measured by serialising."""
    faiss = _faiss()
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexFlat):
        return int(index.ntotal * index.code_size)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return int(ivf.ntotal * (ivf.code_size + 8) + index_bytes(ivf.quantizer))
    return int(faiss.serialize_index(index).nbytes)


class RetrievalDatabase:
    def __init__(self, dim: int, index_spec: str = AUTO, train_size: int = 0, nprobe: int = 8,
                 ef_search: int = 64, exact_max: int = 4096, backend: str = "faiss", device: str = "cpu") -> None:
        self.dim = dim
        self.index_spec = index_spec
        self.nprobe = nprobe  # IVF lists visited per query
        self.ef_search = ef_search  # HNSW candidate list size
        self.exact_max = exact_max  # index=auto: entries searched exactly before the compressed index
        self.backend = backend
        self.device = torch.device(device)
        if backend == "torch" and index_spec not in (AUTO, "Flat"):
            raise UserError(f"method.backend=torch searches exactly: use method.index=auto or Flat, not '{index_spec}'")
        self.labels = np.zeros(0, dtype=np.int32)  # class id of each entry: index entries, then pending ones
        self.index_reports: list[dict] = []  # index=auto: one record per (re)training
        self.trained_entries = 0  # index=auto: database size at the last training (0: still exact)
        self.vectors = np.zeros((0, dim), np.float16)  # index=auto, once compressed: float16 copy for retraining
        self.stored = torch.zeros(0, dim, dtype=self._torch_dtype(), device=self.device)  # backend=torch
        self.index = self._new_index()
        self.train_size = train_size or required_training_vectors(self.index)
        self.pending = _faiss().IndexFlatIP(dim)  # exact buffer until the index is trained

    def _torch_dtype(self) -> torch.dtype:
        return torch.float32 if self.device.type == "cpu" else torch.float16

    @property
    def auto(self) -> bool:
        return self.index_spec == AUTO and self.backend == "faiss"

    def _new_index(self, spec: str | None = None):
        faiss = _faiss()
        spec = spec or ("Flat" if self.index_spec == AUTO else self.index_spec)
        try:
            index = faiss.index_factory(self.dim, spec, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise UserError(f"method.index='{spec}' is not a valid faiss index factory string for {self.dim}-d "
                            f"embeddings: {str(exc).splitlines()[-1]}") from None
        self._set_search_parameters(index)
        return index

    def _set_search_parameters(self, index) -> None:
        faiss = _faiss()
        if faiss.try_extract_index_ivf(index) is not None:
            ivf = faiss.extract_index_ivf(index)
            ivf.nprobe = min(self.nprobe, ivf.nlist)
        hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
        if hnsw is not None:
            hnsw.efSearch = self.ef_search

    def __len__(self) -> int:
        if self.backend == "torch":
            return len(self.stored)
        return int(self.index.ntotal + self.pending.ntotal)

    def add(self, embeddings: torch.Tensor, labels: np.ndarray) -> None:
        """Append (N, D) normalised embeddings with their (N,) class ids."""
        vectors = np.ascontiguousarray(embeddings.detach().cpu().float().numpy(), dtype=np.float32)
        if len(vectors) == 0:
            return
        if vectors.shape[1] != self.dim:
            raise UserError(f"embeddings of dimension {vectors.shape[1]} do not fit a database of dimension {self.dim}")
        self.labels = np.concatenate([self.labels, np.asarray(labels, dtype=np.int32)])
        if self.backend == "torch":
            self.stored = torch.cat([self.stored, torch.from_numpy(vectors).to(self.device, self.stored.dtype)])
            return
        if self.auto:
            self._add_auto(vectors)
            return
        if self.index.is_trained:
            self.index.add(vectors)
            return
        self.pending.add(vectors)
        if self.pending.ntotal >= self.train_size:
            buffered = self.pending.reconstruct_n(0, self.pending.ntotal)  # (N, D), insertion order
            self.index.train(buffered[:self.train_size])
            self.index.add(buffered)
            self.pending.reset()

    def _add_auto(self, vectors: np.ndarray) -> None:
        """index=auto: exact (the flat `index`) up to exact_max entries, then the compressed index, retrained
        on everything whenever the database has grown RETRAIN_GROWTH times since the last training."""
        size = len(self) + len(vectors)
        if size <= self.exact_max:
            self.index.add(vectors)
            return
        if not self.trained_entries:  # leaving the exact phase: the flat index holds the vectors so far
            self.vectors = self.index.reconstruct_n(0, self.index.ntotal).astype(np.float16)
        self.vectors = np.concatenate([self.vectors, vectors.astype(np.float16)])
        if size < RETRAIN_GROWTH * self.trained_entries:
            self.index.add(vectors)  # extend the trained index
        else:
            self._train_auto()

    def _train_auto(self) -> None:
        started = time.perf_counter()
        everything = self.vectors.astype(np.float32)
        spec = auto_index_spec(self.dim, len(everything))
        index = self._new_index(spec)
        index.train(everything)
        index.add(everything)
        self.index, self.trained_entries = index, len(everything)
        seconds = time.perf_counter() - started
        self.index_reports.append({"entries": len(everything), "index": spec, "train_seconds": seconds,
                                   "majority_agreement": self.majority_agreement()})

    def majority_agreement(self, k: int = 16, sample: int = AGREEMENT_SAMPLE, seed: int = 0) -> float:
        """Share of `sample` database entries (seeded draw), used as queries, whose majority label over k
        neighbours is the same with this database's search as with exact search."""
        rng = np.random.default_rng(seed)
        picked = rng.choice(len(self.vectors), size=min(sample, len(self.vectors)), replace=False)
        queries = torch.from_numpy(self.vectors[picked].astype(np.float32))
        _, exact_ids = torch_topk(torch.from_numpy(self.vectors), queries, k)
        exact = np.where(exact_ids.numpy() >= 0, self.labels[np.maximum(exact_ids.numpy(), 0)], -1)
        _, found = self.search(queries, k)
        return float(np.mean(majority_labels(found.numpy()) == majority_labels(exact)))

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, k) similarities and class ids of the nearest entries; label -1 where fewer than k exist."""
        if len(self) == 0 or len(queries) == 0:
            return torch.zeros(len(queries), k), torch.full((len(queries), k), -1, dtype=torch.long)
        if self.backend == "torch":
            similarities, ids = torch_topk(self.stored, queries.detach(), k)
            ids = ids.numpy()
        else:
            vectors = np.ascontiguousarray(queries.detach().cpu().float().numpy(), dtype=np.float32)
            searched = self.index if self.index.ntotal else self.pending  # never both: see add()
            scores, ids = searched.search(vectors, k)
            similarities = torch.from_numpy(scores)
        labels = np.where(ids >= 0, self.labels[np.maximum(ids, 0)], -1).astype(np.int64)
        return similarities, torch.from_numpy(labels)

    def memory_bytes(self) -> int:
        """Bytes held: the index and buffer (computed, not serialised), index=auto's float16 copy, the torch
        backend's matrix, and the label array."""
        stored = self.stored.element_size() * self.stored.nelement()
        return int(index_bytes(self.index) + index_bytes(self.pending) + self.vectors.nbytes + stored
                   + self.labels.nbytes)

    def state_dict(self) -> dict:
        """The live indexes (a checkpoint writes them with faiss's own writer, benchmark/run/checkpoint.py) and
        tensors sharing the arrays' memory: saving makes no in-memory copy of the database."""
        return {"index": self.index, "pending": self.pending, "labels": torch.from_numpy(self.labels),
                "index_spec": self.index_spec, "dim": self.dim, "train_size": self.train_size,
                "vectors": torch.from_numpy(self.vectors), "stored": self.stored,
                "trained_entries": self.trained_entries, "index_reports": list(self.index_reports)}

    def load_state_dict(self, state: dict) -> None:
        if int(state["dim"]) != self.dim or state["index_spec"] != self.index_spec:
            raise UserError(f"the persisted database holds '{state['index_spec']}' entries of dimension "
                            f"{int(state['dim'])}, but this run's method.index/method.embedder give "
                            f"'{self.index_spec}' of dimension {self.dim}; use the persisted run's settings")
        index = _as_index(state["index"])
        # an untrained index holds nothing, and its serialised form loses training settings that the factory
        # sets (training after a reload would differ): build it afresh instead
        self.index = index if index.is_trained else self._new_index()
        self._set_search_parameters(self.index)
        self.pending = _as_index(state["pending"])
        self.labels = np.array(state["labels"], dtype=np.int32)
        self.train_size = int(state["train_size"])
        self.vectors = np.array(state.get("vectors", np.zeros((0, self.dim), np.float16)), dtype=np.float16)
        self.stored = state.get("stored", torch.zeros(0, self.dim)).to(self.device, self._torch_dtype(), copy=True)
        self.trained_entries = int(state.get("trained_entries", 0))
        self.index_reports = list(state.get("index_reports", []))


def _as_index(saved):
    """A faiss index (a copy: the state's owner keeps its own) from a state: an index, or its serialised bytes
    (states of older versions)."""
    faiss = _faiss()
    if isinstance(saved, faiss.Index):
        return faiss.clone_index(saved)
    return faiss.deserialize_index(np.asarray(saved, dtype=np.uint8))
