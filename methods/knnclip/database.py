"""The growing retrieval database: L2-normalised embeddings with their class ids, searched by inner product
(= cosine similarity) through any faiss index factory string."""
from __future__ import annotations

import numpy as np
import torch

from benchmark.errors import UserError


class RetrievalDatabase:
    def __init__(self, dim: int, index_spec: str = "Flat") -> None:
        import faiss

        self.dim = dim
        self.index_spec = index_spec
        try:
            self.index = faiss.index_factory(dim, index_spec, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise UserError(f"method.index='{index_spec}' is not a valid faiss index factory string: "
                            f"{str(exc).splitlines()[-1]}") from None
        self.labels = np.zeros(0, dtype=np.int64)  # class id of each entry, in insertion order

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, embeddings: torch.Tensor, labels: np.ndarray) -> None:
        """Append (N, D) normalised embeddings with their (N,) class ids."""
        vectors = np.ascontiguousarray(embeddings.detach().cpu().numpy(), dtype=np.float32)
        if len(vectors) == 0:
            return
        if not self.index.is_trained:
            if len(vectors) < 1:
                raise UserError(f"faiss index '{self.index_spec}' needs training vectors")
            self.index.train(vectors)
        self.index.add(vectors)
        self.labels = np.concatenate([self.labels, np.asarray(labels, dtype=np.int64)])

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, k) similarities and class ids of the nearest entries; label -1 where fewer than k exist."""
        vectors = np.ascontiguousarray(queries.detach().cpu().numpy(), dtype=np.float32)
        if len(self) == 0 or len(vectors) == 0:
            return torch.zeros(len(vectors), k), torch.full((len(vectors), k), -1, dtype=torch.long)
        similarities, ids = self.index.search(vectors, k)
        labels = np.where(ids >= 0, self.labels[np.maximum(ids, 0)], -1)
        return torch.from_numpy(similarities), torch.from_numpy(labels)

    def memory_bytes(self) -> int:
        """Exact bytes of the serialised index plus the label array."""
        import faiss

        return int(faiss.serialize_index(self.index).nbytes + self.labels.nbytes)

    def state_dict(self) -> dict:
        import faiss

        return {"index": faiss.serialize_index(self.index), "labels": self.labels.copy(),
                "index_spec": self.index_spec, "dim": self.dim}

    def load_state_dict(self, state: dict) -> None:
        import faiss

        self.index = faiss.deserialize_index(np.asarray(state["index"], dtype=np.uint8))
        self.labels = np.asarray(state["labels"], dtype=np.int64)
        self.index_spec, self.dim = state["index_spec"], int(state["dim"])
