"""kNN-CLIP (Gui et al., "Retrieval Enables Training-Free Segmentation on Continually Expanding Large
Vocabularies"), our reading of it; see fusion.py for the rules and configs/method/knnclip.yaml for the keys.

learn(step t): for every ground-truth segment of the step's training images (one per class on semantic
streams, one per instance on panoptic streams), the mask-pooled embedding of the frozen segmenter's dense
features is added to the database with its class id. One pass, no gradient: nothing is ever overwritten, so
nothing is forgotten.
predict: each mask proposal retrieves k neighbours; their votes give P_ret, fused with P_base.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchmark import distributed
from benchmark.data.types import IGNORE_LABEL, Sample, Vocabulary
from benchmark.errors import UserError
from benchmark.method import ContinualMethod, SegmentationOutput, StepData, register_method
from benchmark.models.inference import outputs_from_probs
from benchmark.models.segmenter import pool_regions
from methods.knnclip.database import RetrievalDatabase
from methods.knnclip.fusion import fuse, retrieval_confidence, retrieval_probs


def segment_regions(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth segments as a region map (-1 = none) and each region's class id: per class on semantic
    samples, per instance on panoptic ones (crowd segments skipped)."""
    if sample.pan_seg is not None:
        segments = [s for s in sample.segments if not s.iscrowd]
        regions = np.full(sample.pan_seg.shape, -1, dtype=np.int32)
        for r, seg in enumerate(segments):
            regions[sample.pan_seg == seg.id] = r
        return regions, np.array([s.category_id for s in segments], dtype=np.int64)
    classes = np.unique(sample.sem_seg)
    classes = classes[classes != IGNORE_LABEL]
    regions = np.where(sample.sem_seg != IGNORE_LABEL, np.searchsorted(classes, sample.sem_seg), -1)
    return regions.astype(np.int32), classes.astype(np.int64)


@register_method("knnclip")
class KnnClip(ContinualMethod):
    @dataclass
    class Config:
        k: int = 16  # neighbours per query
        tau: float = 0.1  # temperature of similarity votes
        T: float = 0.5  # confidence threshold for fusion
        lambda_: float = 0.7  # weight of P_ret in the fusion (config key `lambda`)
        vote: str = "similarity"  # similarity | uniform
        confidence: str = "max_prob"  # max_prob | mean_sim
        index: str = "Flat"  # faiss index factory string
        embedder: str = "clip"  # clip: the segmenter's mask-pooled CLIP features

        def __post_init__(self) -> None:  # runs when the config is validated, before any work starts
            if self.embedder != "clip":
                raise UserError(f"method.embedder={self.embedder} is not available; choose: clip")
            if self.vote not in ("similarity", "uniform"):
                raise UserError(f"method.vote={self.vote} is not one of: similarity, uniform")
            if self.confidence not in ("max_prob", "mean_sim"):
                raise UserError(f"method.confidence={self.confidence} is not one of: max_prob, mean_sim")
            for key in ("k", "tau"):
                if getattr(self, key) <= 0:
                    raise UserError(f"method.{key} must be positive, got {getattr(self, key)}")
            if not 0 <= self.lambda_ <= 1:
                raise UserError(f"method.lambda must be within [0, 1], got {self.lambda_}")

    def __init__(self, config, segmenter, vocabulary, seed: int = 0) -> None:
        super().__init__(config, segmenter, vocabulary, seed)
        self.database: RetrievalDatabase | None = None

    def _database(self, dim: int) -> RetrievalDatabase:
        if self.database is None:
            self.database = RetrievalDatabase(dim, self.config.index)
        return self.database

    @torch.no_grad()
    def learn(self, step: StepData) -> None:
        # torchrun: each rank embeds its shard of the step's images; every rank then adds all images' segments
        # in step order and in the single-process batches, so each holds the single-process database bit for bit
        batch_size = self.segmenter.config.batch_size
        per_image: list[tuple[int, tuple[torch.Tensor, np.ndarray]]] = []  # (position in step, segments)
        pending: list[tuple[int, Sample]] = []
        for position, sample in distributed.sharded_samples(step):
            pending.append((position, sample))
            if len(pending) == batch_size:
                per_image += self._embed(pending)
                pending = []
        if pending:
            per_image += self._embed(pending)
        ordered = distributed.gather_sorted(per_image)
        for start in range(0, len(ordered), batch_size):
            self._ingest(ordered[start:start + batch_size])

    def _embed(self, samples: list[tuple[int, Sample]]) -> list[tuple[int, tuple[torch.Tensor, np.ndarray]]]:
        """(position, ((n, D) embeddings, (n,) class ids)) of each image's ground-truth segments."""
        out = []
        for (position, sample), dense in zip(samples, self.segmenter.cached_dense_features([s for _, s in samples])):
            regions, classes = segment_regions(sample)
            out.append((position, (pool_regions(dense, regions, len(classes)), classes)))
        return out

    def _ingest(self, segments: list[tuple[torch.Tensor, np.ndarray]]) -> None:
        embeddings = [e for e, classes in segments if len(classes)]
        if embeddings:
            stacked = torch.cat(embeddings)
            self._database(stacked.shape[1]).add(stacked, np.concatenate([c for _, c in segments if len(c)]))

    @torch.no_grad()
    def predict(self, batch: list[Sample], vocab: Vocabulary) -> list[SegmentationOutput]:
        outputs = []
        for sample, feats in zip(batch, self.segmenter.cached_image_features(batch)):
            p_base = self.segmenter.classify(feats.embeddings, vocab)
            probs = p_base
            if self.database is not None and len(self.database):
                similarities, labels = self.database.search(feats.embeddings, self.config.k)
                p_ret = retrieval_probs(similarities, labels, vocab.ids, self.config.tau, self.config.vote)
                confidence = retrieval_confidence(p_ret, similarities, labels, self.config.confidence)
                probs = fuse(p_base, p_ret, confidence, self.config.T, self.config.lambda_)
            outputs.append(outputs_from_probs(feats, probs, vocab, panoptic=sample.pan_seg is not None))
        return outputs

    def state_dict(self) -> dict:
        return {"database": self.database.state_dict() if self.database is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if state.get("database") is not None:
            self.database = RetrievalDatabase(int(state["database"]["dim"]), state["database"]["index_spec"])
            self.database.load_state_dict(state["database"])

    def memory_bytes(self) -> int:
        return self.database.memory_bytes() if self.database is not None else 0
