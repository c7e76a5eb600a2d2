"""Semantic and panoptic outputs from overlapping mask proposals with class probabilities, as MaskFormer /
Mask2Former / FC-CLIP do it (`semantic_inference` and `panoptic_inference` of MaskFormer's
`maskformer_model.py`), for binary masks:

- semantic: each pixel takes argmax_c sum_m P(m, c) · mask_m(pixel);
- panoptic: a mask is kept when its best class probability exceeds `object_threshold`; each pixel goes to the
  kept mask covering it with the highest score; a kept mask whose visible area is below `overlap_threshold`
  times its own area is dropped; masks of a stuff class merge into one segment per class, masks of a thing
  class stay separate instances. A segment's score is its mask's class probability (the first mask's for
  merged stuff).
"""
from __future__ import annotations

import numpy as np
import torch

from benchmark.data.types import SegmentInfo, Vocabulary
from benchmark.method import SegmentationOutput


def semantic_from_masks(masks: np.ndarray, probs: torch.Tensor, class_ids: np.ndarray) -> np.ndarray:
    """(H, W) int64 class ids from (M, H, W) bool masks and (M, C) probabilities over `class_ids` (C,)."""
    num, height, width = masks.shape
    scores = probs.T.float() @ torch.from_numpy(masks.reshape(num, -1)).float()  # (C, H*W)
    return class_ids[scores.argmax(dim=0).numpy()].reshape(height, width)


def panoptic_from_masks(masks: np.ndarray, probs: torch.Tensor, vocab: Vocabulary, object_threshold: float,
                        overlap_threshold: float) -> tuple[np.ndarray, list[SegmentInfo], list[float]]:
    """Panoptic segment map (0 = no segment), segments and their scores, MaskFormer-style (see module doc)."""
    ids = np.asarray(vocab.ids, dtype=np.int64)
    isthing = {c.id: c.isthing for c in vocab.classes}
    pan_seg = np.zeros(masks.shape[1:], dtype=np.int64)
    segments: list[SegmentInfo] = []
    scores: list[float] = []
    if len(masks) == 0:
        return pan_seg, segments, scores
    best_prob, best_class = probs.max(dim=1)
    keep = np.flatnonzero(best_prob.numpy() > object_threshold)
    if len(keep) == 0:
        return pan_seg, segments, scores
    kept_masks = masks[keep]  # (K, H, W)
    weighted = best_prob.numpy()[keep][:, None, None] * kept_masks  # (K, H, W)
    owner = weighted.argmax(axis=0)  # (H, W) index into keep
    stuff_segment: dict[int, int] = {}
    for k, proposal in enumerate(keep):
        class_id = int(ids[int(best_class[proposal])])
        original_area = int(kept_masks[k].sum())
        visible = (owner == k) & kept_masks[k]
        visible_area = int(visible.sum())
        if original_area == 0 or visible_area == 0 or visible_area / original_area < overlap_threshold:
            continue
        if not isthing[class_id] and class_id in stuff_segment:
            segment_id = stuff_segment[class_id]
            pan_seg[visible] = segment_id
            segments[segment_id - 1].area += visible_area
            continue
        segment_id = len(segments) + 1
        if not isthing[class_id]:
            stuff_segment[class_id] = segment_id
        pan_seg[visible] = segment_id
        segments.append(SegmentInfo(segment_id, class_id, False, isthing[class_id], visible_area))
        scores.append(float(best_prob[proposal]))
    return pan_seg, segments, scores


def outputs_from_masks(masks: np.ndarray, probs: torch.Tensor, vocab: Vocabulary, panoptic: bool,
                       object_threshold: float = 0.8, overlap_threshold: float = 0.8) -> SegmentationOutput:
    """SegmentationOutput from (M, H, W) bool mask proposals and (M, C) class probabilities over `vocab`."""
    sem_seg = semantic_from_masks(masks, probs, np.asarray(vocab.ids, dtype=np.int64))
    if not panoptic:
        return SegmentationOutput(sem_seg=sem_seg)
    pan_seg, segments, scores = panoptic_from_masks(masks, probs, vocab, object_threshold, overlap_threshold)
    return SegmentationOutput(sem_seg=sem_seg, pan_seg=pan_seg, segments=segments, scores=scores)
