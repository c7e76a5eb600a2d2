"""kNN-CLIP (Gui et al., "Retrieval Enables Training-Free Segmentation on Continually Expanding Large
Vocabularies"), our reading of it; see fusion.py for the rules and configs/method/knnclip.yaml for the keys.

learn(step t): for every ground-truth segment of the step's training images (one per class on semantic
streams, one per instance on panoptic streams), the configured embedder's embedding (mask-pooled CLIP dense
features by default, DINOv2, or the segmenter's own mask embeddings; benchmark/models/embedders.py) is added
to the database with its class id. One pass, no gradient: nothing is ever overwritten, so nothing is forgotten.
predict: the mask proposals of a whole batch of images are embedded and searched at once (k neighbours
each); their votes give P_ret, fused with P_base; the fused probabilities go through the segmenter's usual
inference (MaskFormer-style for overlapping masks of model=cached). A proposal whose mask is empty (no pixel
at the 0.5 cut) or that has no embedding is not searched and keeps P_base: pooled over no pixel, its
embedding says nothing about it.

The embedder `auto` (default) is the paper's DINOv2 with a real base model (model=cached, or an open_clip
model with pretrained weights) and the segmenter's own CLIP features on the random demo model (`resolve_embedder`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from benchmark import distributed
from benchmark.data.types import BACKGROUND_LABEL, IGNORE_LABEL, ImageInput, Sample, Vocabulary
from benchmark.errors import UserError
from benchmark.method import ContinualMethod, SegmentationOutput, StepData, register_method
from benchmark.models.inference import outputs_from_probs
from benchmark.models.embedders import EMBEDDERS, build_embedder
from methods.knnclip.database import RetrievalDatabase
from methods.knnclip.fusion import VOID_MODES, fuse, retrieval_confidence, retrieval_probs


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
    classes = classes[(classes != IGNORE_LABEL) & (classes != BACKGROUND_LABEL)]  # a protocol's background: no class
    regions = np.where(np.isin(sample.sem_seg, classes), np.searchsorted(classes, sample.sem_seg), -1)
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
        index: str = "auto"  # auto (exact while small, then IVF-SQ8, retrained as it grows) | a faiss factory string
        exact_max: int = 4096  # index=auto: entries searched exactly before switching to the compressed index
        backend: str = "auto"  # faiss | torch (exact search on the device) | auto: torch on CUDA, else faiss
        embedder: str = "auto"  # auto | clip | segmenter | dinov2_vits14 | dinov2_vitb14 | dinov2_vitl14 | dinov2_vitg14
        embedder_input_size: int = 224  # dinov2_*: short side of the input, a multiple of 14 (aspect ratio kept)
        embedder_pretrained: bool = True  # dinov2_*: timm's pretrained weights; false = random (seeded)
        embedder_depth: Optional[int] = None  # dinov2_*: keep the first N blocks only (cheap tests); None = all
        match_fraction: float = 0.5  # embedder=segmenter: a proposal labels the segment holding this share of it
        train_size: int = 0  # vectors buffered (searched exactly) before training the index; 0 = what it needs
        nprobe: int = 8  # IVF indexes: inverted lists visited per query
        ef_search: int = 64  # HNSW indexes: candidate list size per query
        object_threshold: float = 0.8  # binary masks (model=cached v1), panoptic: keep masks with best prob > this
        overlap_threshold: float = 0.8  # ... whose visible share of their area is at least this
        void: str = "keep"  # keep | renormalise | drop: the base model's void mass in the fusion (fusion.py)

        def __post_init__(self) -> None:  # runs when the config is validated, before any work starts
            check_config(self)

    def __init__(self, config, segmenter, num_classes: int, seed: int = 0) -> None:
        super().__init__(config, segmenter, num_classes, seed)
        self.embedder_name = resolve_embedder(config.embedder, segmenter)
        self.embedder = build_embedder(self.embedder_name, segmenter, input_size=config.embedder_input_size,
                                       pretrained=config.embedder_pretrained, depth=config.embedder_depth,
                                       match_fraction=config.match_fraction, seed=seed,
                                       device=str(getattr(segmenter, "device", "cpu")))
        # built now, so that a bad index string fails before any work
        device = torch.device(getattr(segmenter, "device", "cpu"))
        backend = config.backend if config.backend != "auto" else ("torch" if device.type == "cuda" else "faiss")
        self.database = RetrievalDatabase(self.embedder.dim, config.index, config.train_size, config.nprobe,
                                          config.ef_search, config.exact_max, backend, str(device))

    @torch.no_grad()
    def learn(self, step: StepData) -> None:
        # torchrun: each rank embeds its shard of the step's images; every rank then adds all images' segments
        # in step order and in the single-process batches, so each holds the single-process database bit for bit
        batch_size = self.segmenter.config.batch_size
        per_image: list[tuple[int, tuple[torch.Tensor, np.ndarray]]] = []  # (position in step, segments)
        pending: list[tuple[int, Sample]] = []
        for position, sample in step.sharded_samples():
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
        """(position, ((n, D) embeddings, (n,) class ids)) of each image's usable ground-truth segments."""
        regions, classes = zip(*(segment_regions(s) for _, s in samples))
        embeddings = self.embedder.region_embeddings([s for _, s in samples], list(regions), [len(c) for c in classes])
        out = []
        for (position, _), embedding, labels in zip(samples, embeddings, classes):
            usable = embedding.norm(dim=1) > 0  # empty segments (and unmatched ones) have no embedding
            out.append((position, (embedding[usable], labels[usable.numpy()])))
        return out

    def _ingest(self, segments: list[tuple[torch.Tensor, np.ndarray]]) -> None:
        if segments:
            self.database.add(torch.cat([e for e, _ in segments]), np.concatenate([c for _, c in segments]))

    @torch.no_grad()
    def predict(self, images: list[ImageInput], vocab: Vocabulary) -> list[SegmentationOutput]:
        features = self.segmenter.cached_image_features(images)
        p_base = torch.cat([self.segmenter.base_probs(f, vocab) for f in features])  # (M, C) over the batch
        void = torch.cat([self.segmenter.void_probs(f, vocab) for f in features])  # (M,)
        probs = p_base
        if len(self.database):
            queries = torch.cat(self.embedder.proposal_embeddings(images, features))  # (M, D)
            searched = torch.from_numpy(np.concatenate([f.nonempty_masks() for f in features])) \
                & (queries.norm(dim=1) > 0).cpu()  # (M,) the others keep P_base (no neighbours, no fusion)
            similarities = torch.zeros(len(queries), self.config.k)
            labels = torch.full((len(queries), self.config.k), -1, dtype=torch.long)
            similarities[searched], labels[searched] = self.database.search(queries[searched], self.config.k)
            p_ret = retrieval_probs(similarities, labels, vocab.ids, self.config.tau, self.config.vote)
            confidence = retrieval_confidence(p_ret, similarities, labels, self.config.confidence)
            probs, void = fuse(p_base, p_ret, confidence, self.config.T, self.config.lambda_, void, self.config.void)
        counts = [len(f.embeddings) for f in features]
        return [outputs_from_probs(f, p, vocab, panoptic=s.panoptic, void_probs=v,
                                   object_threshold=self.config.object_threshold,
                                   overlap_threshold=self.config.overlap_threshold)
                for s, f, p, v in zip(images, features, torch.split(probs, counts), torch.split(void, counts))]

    def state_dict(self) -> dict:
        return {"database": self.database.state_dict(), "embedder": self.embedder_name}

    def load_state_dict(self, state: dict) -> None:
        if state.get("embedder", self.embedder_name) != self.embedder_name:
            raise UserError(f"the persisted database was built with method.embedder={state['embedder']}, this run "
                            f"uses {self.embedder_name}; use the same embedder to resume")
        self.database.load_state_dict(state["database"])

    def memory_bytes(self) -> int:
        return self.database.memory_bytes()


PAPER_EMBEDDER = "dinov2_vitl14"  # the paper builds its database from DINOv2 features (the variant is our choice)


def resolve_embedder(name: str, segmenter) -> str:
    """`auto`: the paper's DINOv2 for a real base model (model=cached, or open_clip with pretrained weights);
    the segmenter's CLIP features (`clip`) on a random one such as the demo's, which needs no download."""
    if name != "auto":
        return name
    model = segmenter.config
    real = getattr(model, "kind", "open_clip") == "cached" or bool(getattr(model, "pretrained", None))
    return PAPER_EMBEDDER if real else "clip"


def check_config(config) -> None:
    """One clear error for a bad parameter, before any work."""
    if config.embedder not in ("auto", *EMBEDDERS):
        raise UserError(f"method.embedder='{config.embedder}' is not one of: auto, {', '.join(EMBEDDERS)}")
    if config.backend not in ("auto", "faiss", "torch"):
        raise UserError(f"method.backend={config.backend} is not one of: auto, faiss, torch")
    if config.vote not in ("similarity", "uniform"):
        raise UserError(f"method.vote={config.vote} is not one of: similarity, uniform")
    if config.void not in VOID_MODES:
        raise UserError(f"method.void={config.void} is not one of: {', '.join(VOID_MODES)}")
    if config.confidence not in ("max_prob", "mean_sim"):
        raise UserError(f"method.confidence={config.confidence} is not one of: max_prob, mean_sim")
    for key, value in (("k", config.k), ("tau", config.tau), ("nprobe", config.nprobe), ("exact_max", config.exact_max),
                       ("ef_search", config.ef_search), ("embedder_input_size", config.embedder_input_size)):
        if value <= 0:
            raise UserError(f"method.{key}={value} must be positive")
    for key, value in (("lambda", config.lambda_), ("match_fraction", config.match_fraction),
                       ("object_threshold", config.object_threshold), ("overlap_threshold", config.overlap_threshold)):
        if not 0 <= value <= 1:
            raise UserError(f"method.{key}={value} must lie within [0, 1]")
    if config.train_size < 0 or (config.embedder_depth is not None and config.embedder_depth <= 0):
        raise UserError("method.train_size must be >= 0 and method.embedder_depth positive (or null)")
