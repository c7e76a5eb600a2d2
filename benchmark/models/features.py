"""`ImageFeatures`: what a segmenter computes once per image (proposals, their embeddings, an exported model's
masks and class scores), stored compactly so caches hold many images; shared by every model kind, the
embedders and the inference that turns class probabilities into outputs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from benchmark.models.mask_inference import SoftMasks


def code_dtype(max_code: int) -> np.dtype:
    """The smallest unsigned integer type holding 0..max_code."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_code <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def byte_size(value) -> int:
    """Bytes held by a cached value: a tensor, an array or an object with `nbytes`."""
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.nelement()
    return int(value.nbytes)


class ImageFeatures:
    """What the frozen segmenter computes once per image (cacheable across steps), stored compactly: the
    proposal map as index + 1 in the smallest unsigned integer type (0 = not covered; uint8 up to 254
    proposals), the embeddings in `storage_dtype` (model.feature_dtype). Both are decoded on access
    (`proposals` int32 with -1 = not covered, `embeddings` float32), so every computation runs in float32."""

    def __init__(self, proposals: np.ndarray, embeddings: torch.Tensor, instance_proposals: bool = False,
                 masks: np.ndarray | None = None, logits: torch.Tensor | None = None,
                 soft_masks: "SoftMasks | None" = None, storage_dtype: torch.dtype = torch.float32) -> None:
        top = int(proposals.max()) + 1 if proposals.size else 0
        self.proposal_codes = (proposals + 1).astype(code_dtype(max(top, 0)))  # (H, W), 0 = not covered
        self.stored_embeddings = embeddings.to(storage_dtype)  # (M, D) L2-normalised ((M, 0) if none exported)
        self.instance_proposals = instance_proposals  # proposals are instances (oracle on panoptic data), not fragments
        self.masks = masks  # (M, H, W) bool overlapping mask proposals (cached external models);
        # None = `proposals` is the partition itself. With masks, `proposals` shows each pixel's best-scoring mask.
        self.logits = logits  # (M, K) class logits of an external model over its class list
        self.soft_masks = soft_masks  # soft mask proposals (cached formats v2, v3: FC-CLIP-style inference)

    @property
    def proposals(self) -> np.ndarray:
        """(H, W) int32 proposal index per pixel, -1 = not covered."""
        return self.proposal_codes.astype(np.int32) - 1

    @property
    def embeddings(self) -> torch.Tensor:
        """(M, D) float32 L2-normalised mask embeddings of the proposals."""
        return self.stored_embeddings.float()

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (what the in-memory cache counts)."""
        return (self.proposal_codes.nbytes + byte_size(self.stored_embeddings)
                + (self.masks.nbytes if self.masks is not None else 0)
                + (byte_size(self.logits) if self.logits is not None else 0)
                + (self.soft_masks.stored.nbytes if self.soft_masks is not None else 0))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for the disk cache (see `from_arrays`)."""
        arrays = {"proposal_codes": self.proposal_codes, "embeddings": self.stored_embeddings.numpy(),
                  "instance_proposals": np.array(self.instance_proposals)}
        if self.masks is not None:
            arrays["masks"] = self.masks
        if self.logits is not None:
            arrays["logits"] = self.logits.numpy()
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "ImageFeatures":
        embeddings = torch.from_numpy(arrays["embeddings"])
        features = cls(np.zeros((0, 0), np.int32), embeddings, bool(arrays["instance_proposals"]), arrays.get("masks"),
                       torch.from_numpy(arrays["logits"]) if "logits" in arrays else None,
                       storage_dtype=embeddings.dtype)
        features.proposal_codes = arrays["proposal_codes"]
        return features

    def mask_stack(self) -> np.ndarray:
        """(M, H, W) bool masks of the proposals, overlapping or not (soft masks: probability >= 0.5)."""
        if self.soft_masks is not None:
            return self.soft_masks.binary()
        if self.masks is not None:
            return self.masks
        return self.proposals[None] == np.arange(len(self.stored_embeddings), dtype=np.int32)[:, None, None]

    def nonempty_masks(self) -> np.ndarray:
        """(M,) bool: the proposal's mask (as `mask_stack` gives it) has at least one pixel."""
        if self.soft_masks is not None:
            return self.soft_masks.has_pixels()
        if self.masks is not None:
            return self.masks.reshape(len(self.masks), -1).any(1)
        covered = self.proposals[self.proposals >= 0]
        return np.bincount(covered, minlength=len(self.stored_embeddings))[:len(self.stored_embeddings)] > 0

