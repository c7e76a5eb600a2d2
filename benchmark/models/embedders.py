"""Embedders for kNN-CLIP's database entries (ground-truth segments of training images) and its queries (the
base segmenter's mask proposals on validation images). Every embedding is L2-normalised; a zero row means
"no embedding for this segment" and is skipped by the database.

- `clip`: the segmenter's MaskCLIP dense features, mask-pooled (default; needs model.kind=open_clip);
- `dinov2_vits14|vitb14|vitl14|vitg14`: DINOv2 through timm (as in the paper), last-layer patch tokens at
  the image's aspect ratio, mask-pooled; random weights (seeded) when not pretrained, a depth override for cheap tests;
- `segmenter`: the base segmenter's own mask embeddings (e.g. FC-CLIP's, exported with model=cached). A
  database entry is the area-weighted mean of the proposals lying inside a ground-truth segment (a proposal
  belongs to the segment holding at least `match_fraction` of its pixels).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


from benchmark.errors import UserError
from benchmark.models.feature_cache import FeatureCache, MemoryCache, config_digest, image_key, weights_digest
from benchmark.models.base import Image
from benchmark.models.dense import pool_masks, pool_regions
from benchmark.models.features import ImageFeatures, byte_size
from benchmark.models.segmenter import disk_cached_arrays

DINOV2_MODELS = {
    "dinov2_vits14": "vit_small_patch14_dinov2.lvd142m",
    "dinov2_vitb14": "vit_base_patch14_dinov2.lvd142m",
    "dinov2_vitl14": "vit_large_patch14_dinov2.lvd142m",
    "dinov2_vitg14": "vit_giant_patch14_dinov2.lvd142m",
}
EMBEDDERS = ("clip", "segmenter", *DINOV2_MODELS)


class Embedder(ABC):
    """Embeds ground-truth regions (database) and mask proposals (queries) in one space of width `dim`."""

    name: str
    dim: int

    @abstractmethod
    def region_embeddings(self, samples: list[Image], regions: list[np.ndarray], counts: list[int]) -> list[torch.Tensor]:
        """(R_i, D) per image for (H, W) region index maps (-1 = none) with R_i regions."""

    @abstractmethod
    def proposal_embeddings(self, samples: list[Image], features: list[ImageFeatures]) -> list[torch.Tensor]:
        """(M_i, D) per image for the segmenter's proposals in `features`."""


class ClipEmbedder(Embedder):
    name = "clip"

    def __init__(self, segmenter) -> None:
        if getattr(segmenter.config, "kind", "open_clip") != "open_clip":
            raise UserError("method.embedder=clip pools the segmenter's dense CLIP features, which "
                            f"model.kind={segmenter.config.kind} lacks; use method.embedder=segmenter or dinov2_*")
        self.segmenter = segmenter
        self.dim = int(segmenter.embed_dim)

    def region_embeddings(self, samples, regions, counts):
        return self.segmenter.region_embeddings(samples, regions, counts)

    def proposal_embeddings(self, samples, features):
        return [f.embeddings for f in features]


class SegmenterEmbedder(Embedder):
    name = "segmenter"

    def __init__(self, segmenter, match_fraction: float) -> None:
        if not segmenter.embed_dim:
            raise UserError("method.embedder=segmenter needs mask embeddings, but the segmenter's predictions have "
                            "none (meta.json embedding_dim is null); export them or use method.embedder=dinov2_*")
        self.segmenter = segmenter
        self.dim = int(segmenter.embed_dim)
        self.match_fraction = match_fraction

    def region_embeddings(self, samples, regions, counts):
        out = []
        for feats, region, count in zip(self.segmenter.cached_image_features(samples), regions, counts):
            masks = feats.mask_stack()  # (M, H, W)
            labelled = region >= 0
            overlap = np.stack([np.bincount(region[mask & labelled], minlength=count) for mask in masks]) \
                if len(masks) else np.zeros((0, count), dtype=np.int64)  # (M, R) pixels of proposal m in region r
            area = masks.reshape(len(masks), -1).sum(1)  # (M,)
            best = overlap.argmax(1) if count else np.zeros(len(masks), dtype=np.int64)
            inside = overlap[np.arange(len(masks)), best] if count else np.zeros(len(masks))
            keep = (area > 0) & (inside >= self.match_fraction * np.maximum(area, 1))
            weights = torch.zeros(count, len(masks))  # (R, M)
            weights[torch.from_numpy(best[keep]), torch.from_numpy(np.flatnonzero(keep))] = \
                torch.from_numpy(inside[keep].astype(np.float32))
            out.append(F.normalize(weights @ feats.embeddings.float(), dim=-1))
        return out

    def proposal_embeddings(self, samples, features):
        return [f.embeddings for f in features]


class DinoV2Embedder(Embedder):
    """DINOv2 ViT from timm: images resized to a short side of `input_size` (a multiple of 14) at their own
    aspect ratio (sides rounded to multiples of 14), final-norm patch tokens pooled on that grid."""

    def __init__(self, name: str, segmenter, input_size: int, pretrained: bool, depth: int | None,
                 seed: int = 0, cache_dir: Path | str | None = None, device: str = "cpu") -> None:
        import timm

        if input_size % 14:
            raise UserError(f"method.embedder_input_size={input_size} must be a multiple of 14 (DINOv2 patch size)")
        self.name = name
        self.segmenter = segmenter
        self.input_size = input_size
        self.device = torch.device(device)
        extra = {"depth": depth} if depth else {}
        with torch.random.fork_rng():  # random weights are drawn from the seed without disturbing the run's RNG
            torch.manual_seed(seed)
            try:
                model = timm.create_model(DINOV2_MODELS[name], pretrained=pretrained, img_size=input_size,
                                          dynamic_img_size=True, num_classes=0, **extra)
            except Exception as exc:  # timm raises several types when weights cannot be fetched
                raise UserError(f"method.embedder={name}: timm could not create {DINOV2_MODELS[name]} "
                                f"(pretrained={pretrained}): {str(exc).splitlines()[0]}; set "
                                f"method.embedder_pretrained=false for random weights") from None
        self.model = model.eval().to(self.device).requires_grad_(False)
        self.dim = int(model.embed_dim)
        config = model.pretrained_cfg
        self.mean = torch.tensor(config.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1)
        self.std = torch.tensor(config.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1)
        self.calls = 0  # backbone forward passes (tests check the caches)
        self.backbone_images = 0  # images through the backbone (the manifest's pass counts)
        self.digest = config_digest({"embedder": name, "input_size": input_size, "pretrained": pretrained,
                                     "depth": depth, "weights": weights_digest(self.model),
                                     "segmenter": getattr(segmenter, "digest", "")})
        self.disk_cache = FeatureCache(cache_dir, f"embedder-{self.digest}")
        self.dense_disk_cache = FeatureCache(cache_dir, f"embedder-dense-{self.digest}")
        # in memory, bounded in bytes like the segmenter's: proposal embeddings of validation images, dense
        # features of training images (an image returning in a later step is not run again)
        budget = int(getattr(segmenter.config, "cache_memory_mb", 1024) * 2**20)
        self._proposal_cache = MemoryCache(budget, byte_size)
        self._dense_cache = MemoryCache(budget, byte_size)

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """(rows, cols) of patches for an image: short side resized to `input_size`, aspect ratio kept, each
        side rounded to a multiple of 14 (at least one patch)."""
        scale = self.input_size / min(height, width)
        return max(1, round(height * scale / 14)), max(1, round(width * scale / 14))

    @torch.no_grad()
    def dense_features(self, images: list[np.ndarray]) -> list[torch.Tensor]:
        """(rows, cols, D) patch tokens of the last block (after the final norm) per RGB uint8 image, at its
        own aspect ratio (timm's dynamic image size interpolates the position embeddings); images of one
        grid size share a forward pass."""
        grids = [self.grid_size(*img.shape[:2]) for img in images]
        out: list[torch.Tensor | None] = [None] * len(images)
        for grid in dict.fromkeys(grids):
            members = [i for i, g in enumerate(grids) if g == grid]
            batch = torch.stack([
                F.interpolate(torch.tensor(images[i]).permute(2, 0, 1)[None].float(),
                              size=(grid[0] * 14, grid[1] * 14), mode="bilinear", align_corners=False)[0]
                for i in members
            ]) / 255.0
            tokens = self.model.forward_features(((batch - self.mean) / self.std).to(self.device))  # (B, P + r*c, D)
            patches = tokens[:, self.model.num_prefix_tokens:].reshape(len(members), *grid, -1).float().cpu()
            for i, features in zip(members, patches):
                out[i] = features
        self.calls += 1
        self.backbone_images += len(images)
        return out

    def region_embeddings(self, samples, regions, counts):
        keys = [image_key(s) for s in samples]
        dense = [self._dense_cache.get(key) for key in keys]
        missing = [i for i, d in enumerate(dense) if d is None]
        if missing:
            fresh = disk_cached_arrays(self.dense_disk_cache, [samples[i] for i in missing],
                                       lambda todo: list(self.dense_features([s.image for s in todo])))
            for i, d in zip(missing, fresh):
                dense[i] = d
                self._dense_cache.put(keys[i], d)
        return [pool_regions(d, region, count) for d, region, count in zip(dense, regions, counts)]

    def proposal_embeddings(self, samples, features):
        """Pooled over each proposal; cached in memory and on disk per (embedder, segmenter, image, proposal
        map): the proposals of exported predictions or of the oracle can change under the same segmenter."""
        keys = [image_key(s, feats.proposal_codes) for s, feats in zip(samples, features)]
        found: dict[int, torch.Tensor] = {}
        for i, key in enumerate(keys):
            if (cached := self._proposal_cache.get(key)) is not None:
                found[i] = cached
            elif (arrays := self.disk_cache.get(key)) is not None:
                found[i] = torch.from_numpy(arrays["embeddings"])
        missing = [i for i in range(len(samples)) if i not in found]
        if missing:
            dense = self.dense_features([samples[i].image for i in missing])
            for i, d in zip(missing, dense):
                feats = features[i]
                overlapping = feats.masks is not None or feats.soft_masks is not None
                found[i] = pool_masks(d, feats.mask_stack()) if overlapping else \
                    pool_regions(d, feats.proposals, len(feats.embeddings))
                self.disk_cache.put(keys[i], embeddings=found[i].numpy())
        for i, key in enumerate(keys):
            if key not in self._proposal_cache:
                self._proposal_cache.put(key, found[i])
        return [found[i] for i in range(len(samples))]


def build_embedder(name: str, segmenter, *, input_size: int = 224, pretrained: bool = True,
                   depth: int | None = None, match_fraction: float = 0.5, seed: int = 0,
                   device: str = "cpu") -> Embedder:
    """The embedder `name` (one of EMBEDDERS) over `segmenter`'s proposals."""
    if name == "clip":
        return ClipEmbedder(segmenter)
    if name == "segmenter":
        return SegmenterEmbedder(segmenter, match_fraction)
    if name in DINOV2_MODELS:
        return DinoV2Embedder(name, segmenter, input_size, pretrained, depth, seed,
                              segmenter.cache_dir, device)
    raise UserError(f"method.embedder='{name}' is not one of: {', '.join(EMBEDDERS)}")
