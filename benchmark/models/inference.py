"""From per-proposal class probabilities to the outputs the evaluator scores.

Semantic: every pixel takes the class of its proposal's most probable class. Panoptic: stuff classes merge
into one segment per class; thing classes become one segment per proposal when proposals are instances
(oracle on panoptic data), else one segment per connected component of the class (superpixel fragments of
one object join up). A segment's score is the mean confidence of its pixels.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from benchmark.data.types import SegmentInfo, Vocabulary
from benchmark.method import SegmentationOutput
from benchmark.models.features import ImageFeatures


def outputs_from_probs(features: ImageFeatures, probs: torch.Tensor, vocab: Vocabulary, panoptic: bool,
                       object_threshold: float = 0.8, overlap_threshold: float = 0.8,
                       void_probs: torch.Tensor | None = None) -> SegmentationOutput:
    """probs: (M, C) non-void class probabilities over `vocab` for the M proposals of `features`; void_probs:
    (M,) their "no object" probabilities (None = the segmenter has no void class). Overlapping mask proposals
    of cached external models go through their own inference (benchmark.models.mask_inference): FC-CLIP's for
    soft masks (features.soft_masks, with the producer's thresholds), MaskFormer-style for binary ones (format
    v1, with the two thresholds given here)."""
    if features.soft_masks is not None:
        from benchmark.models.mask_inference import outputs_from_soft_masks

        void = void_probs if void_probs is not None else torch.zeros(len(probs))
        return outputs_from_soft_masks(features.soft_masks, probs, void, vocab, panoptic)
    if features.masks is not None:
        from benchmark.models.mask_inference import outputs_from_masks

        return outputs_from_masks(features.masks, probs, vocab, panoptic, object_threshold, overlap_threshold)
    ids = np.asarray(vocab.ids, dtype=np.int64)
    proposals = features.proposals
    if probs.shape[0] == 0:
        return SegmentationOutput(sem_seg=np.full(proposals.shape, ids[0], dtype=np.int64))
    score, best = probs.max(dim=1)
    labels = ids[best.numpy()]
    covered = proposals >= 0
    # pixels outside every proposal take the class most proposals vote for (they are rare: oracle only)
    fallback = np.bincount(best.numpy(), minlength=len(ids)).argmax()
    sem_seg = np.where(covered, labels[np.maximum(proposals, 0)], ids[fallback])
    if not panoptic:
        return SegmentationOutput(sem_seg=sem_seg)

    pixel_score = np.where(covered, score.numpy()[np.maximum(proposals, 0)], 0.0)
    isthing = {c.id: c.isthing for c in vocab.classes}
    pan_seg = np.zeros(proposals.shape, dtype=np.int64)
    segments, scores = [], []
    for cls in np.unique(labels):
        class_mask = covered & (sem_seg == cls)
        if isthing[int(cls)]:
            if features.instance_proposals:
                parts = [proposals == p for p in np.flatnonzero(labels == cls)]
            else:
                components, count = ndimage.label(class_mask)
                parts = [components == i for i in range(1, count + 1)]
        else:
            parts = [class_mask]
        for mask in parts:
            area = int(mask.sum())
            if area == 0:
                continue
            segment_id = len(segments) + 1
            pan_seg[mask] = segment_id
            segments.append(SegmentInfo(segment_id, int(cls), False, isthing[int(cls)], area))
            scores.append(float(pixel_score[mask].mean()))
    return SegmentationOutput(sem_seg=sem_seg, pan_seg=pan_seg, segments=segments, scores=scores)
