"""The growing retrieval database: L2-normalised embeddings with their class ids, searched by inner product
(= cosine similarity) through any faiss index factory string (`Flat`, `SQfp16` for half the bytes,
`HNSW32`, `IVF4096,PQ64` for ~80 bytes per entry, ...).

Indexes that need training (IVF, PQ, SQ) are trained once, on the first `train_size` vectors: until that
many have arrived, entries are kept in an exact flat buffer (searched exactly, so predictions work from the
first step); then the index is trained on the first `train_size` of them and the whole buffer moves into it. A stream that ends before
`train_size` keeps its entries exact. `train_size=0` asks for what the index needs to train well: 39
vectors per k-means centroid (faiss's own warning threshold) of the IVF lists and of the PQ codebooks.
"""
from __future__ import annotations

import numpy as np
import torch

from benchmark.errors import UserError

MIN_POINTS_PER_CENTROID = 39  # faiss warns below this many training points per centroid


def _faiss():
    import faiss

    return faiss


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


class RetrievalDatabase:
    def __init__(self, dim: int, index_spec: str = "Flat", train_size: int = 0, nprobe: int = 16,
                 ef_search: int = 64) -> None:
        self.dim = dim
        self.index_spec = index_spec
        self.nprobe = nprobe  # IVF lists visited per query
        self.ef_search = ef_search  # HNSW candidate list size
        self.index = self._new_index()
        self.train_size = train_size or required_training_vectors(self.index)
        self.pending = _faiss().IndexFlatIP(dim)  # exact buffer until the index is trained
        self.labels = np.zeros(0, dtype=np.int32)  # class id of each entry: index entries, then pending ones

    def _new_index(self):
        faiss = _faiss()
        try:
            index = faiss.index_factory(self.dim, self.index_spec, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise UserError(f"method.index='{self.index_spec}' is not a valid faiss index factory string: "
                            f"{str(exc).splitlines()[-1]}") from None
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
        return int(self.index.ntotal + self.pending.ntotal)

    def add(self, embeddings: torch.Tensor, labels: np.ndarray) -> None:
        """Append (N, D) normalised embeddings with their (N,) class ids."""
        vectors = np.ascontiguousarray(embeddings.detach().cpu().numpy(), dtype=np.float32)
        if len(vectors) == 0:
            return
        if vectors.shape[1] != self.dim:
            raise UserError(f"embeddings of dimension {vectors.shape[1]} do not fit a database of dimension {self.dim}")
        self.labels = np.concatenate([self.labels, np.asarray(labels, dtype=np.int32)])
        if self.index.is_trained:
            self.index.add(vectors)
            return
        self.pending.add(vectors)
        if self.pending.ntotal >= self.train_size:
            buffered = self.pending.reconstruct_n(0, self.pending.ntotal)  # (N, D), insertion order
            self.index.train(buffered[:self.train_size])
            self.index.add(buffered)
            self.pending.reset()

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, k) similarities and class ids of the nearest entries; label -1 where fewer than k exist."""
        vectors = np.ascontiguousarray(queries.detach().cpu().numpy(), dtype=np.float32)
        if len(self) == 0 or len(vectors) == 0:
            return torch.zeros(len(vectors), k), torch.full((len(vectors), k), -1, dtype=torch.long)
        searched = self.index if self.index.ntotal else self.pending  # never both: see add()
        similarities, ids = searched.search(vectors, k)
        labels = np.where(ids >= 0, self.labels[np.maximum(ids, 0)], -1).astype(np.int64)
        return torch.from_numpy(similarities), torch.from_numpy(labels)

    def memory_bytes(self) -> int:
        """Exact bytes of the serialised index and buffer plus the label array."""
        faiss = _faiss()
        return int(faiss.serialize_index(self.index).nbytes + faiss.serialize_index(self.pending).nbytes
                   + self.labels.nbytes)

    def state_dict(self) -> dict:
        faiss = _faiss()
        return {"index": faiss.serialize_index(self.index), "pending": faiss.serialize_index(self.pending),
                "labels": self.labels.copy(), "index_spec": self.index_spec, "dim": self.dim,
                "train_size": self.train_size}

    def load_state_dict(self, state: dict) -> None:
        faiss = _faiss()
        if int(state["dim"]) != self.dim or state["index_spec"] != self.index_spec:
            raise UserError(f"the persisted database holds '{state['index_spec']}' entries of dimension "
                            f"{int(state['dim'])}, but this run's method.index/method.embedder give "
                            f"'{self.index_spec}' of dimension {self.dim}; use the persisted run's settings")
        index = faiss.deserialize_index(np.asarray(state["index"], dtype=np.uint8))
        # an untrained index holds nothing, and its serialised form loses training settings that the factory
        # sets (training after a reload would differ): build it afresh instead
        self.index = index if index.is_trained else self._new_index()
        self._set_search_parameters(self.index)
        self.pending = faiss.deserialize_index(np.asarray(state["pending"], dtype=np.uint8))
        self.labels = np.asarray(state["labels"], dtype=np.int32)
        self.train_size = int(state["train_size"])
