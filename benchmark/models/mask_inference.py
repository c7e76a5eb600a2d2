"""Semantic and panoptic outputs from overlapping mask proposals with class probabilities, as MaskFormer /
Mask2Former / FC-CLIP do it.

Soft masks (predictions formats v2 and v3, `SoftMasks`): FC-CLIP's own post-processing, step for step
(bytedance/fc-clip `fcclip/fcclip.py`, `FCCLIP.forward` at inference, `semantic_inference`,
`panoptic_inference`; detectron2 `modeling/postprocessing.py` `sem_seg_postprocess`):

- class scores (format v3): FC-CLIP's geometric ensemble of its in-vocabulary and out-of-vocabulary
  classifiers and its void step, over the asked vocabulary (`fcclip_class_logits`);

- mask logits at the output resolution are upsampled bilinearly (align_corners=False) to the padded input,
  cropped to the unpadded input and upsampled bilinearly to the original image, then `sigmoid`;
- semantic: scores(c, pixel) = sum_q P(q, c) · sigmoid(mask_q)(pixel) with P the class probabilities without
  the void column (`einsum("qc,qhw->chw")`); each pixel takes the argmax class (detectron2's SemSegEvaluator).
  FC-CLIP orders this two ways (`sem_seg_postprocess_before_inference`): with panoptic or instance inference
  on (its A-150 config) the masks are resized to the image first, as above; with both off (its A-847 and
  PC-459 configs) the scores are computed on the padded input and then cropped and resized bilinearly
  (`SoftMasks.semantic_at_input`, meta key `semantic_at_input`, recorded by the exporter);
- panoptic: `scores, labels = P_with_void.max(-1)`; a query is kept when its label is not void and its score
  exceeds `object_threshold`; each pixel goes to the kept query with the highest score · mask probability; a
  kept query whose won pixels cover less than `overlap_threshold` of its own area (mask >= 0.5) is skipped;
  its segment is its won pixels with mask >= 0.5; stuff classes merge into the class's first segment, thing
  classes stay separate instances. A segment's score is its query's class probability (the first query's
  for merged stuff).

Binary masks (predictions format v1, read for old folders): the same rules with 0/1 masks and the void
column already dropped (`outputs_from_masks`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.data.types import SegmentInfo, Vocabulary
from benchmark.method import SegmentationOutput

MASK_LOGIT_LEVELS = 65535  # format v2 stores mask logits as uint16 codes over [-bound, bound]
FLOAT16_MAX = 65504.0  # format v3 stores float16 mask logits: larger magnitudes saturate here instead of at inf
SEMANTIC_CHUNK_ELEMENTS = 1 << 24  # semantic scores are computed a band of rows at a time: C x rows x W <= this


def encode_mask_logits(logits: np.ndarray, bound: float) -> np.ndarray:
    """(M, h, w) float mask logits -> uint16 codes of clip(logits, -bound, bound) on a uniform grid.

    Error bound: a decoded logit is within bound / 65535 of the clipped one, and bilinear upsampling (convex
    weights) keeps that bound, so every mask probability read back is within bound / (4 · 65535) of the
    exported model's (sigmoid is 1/4-Lipschitz): 2.4e-4 for bound 64, wherever |logit| <= bound.
    """
    clipped = np.clip(np.asarray(logits, dtype=np.float64), -bound, bound)
    return np.rint((clipped + bound) * (MASK_LOGIT_LEVELS / (2 * bound))).astype(np.uint16)


def decode_mask_logits(stored: np.ndarray, bound: float) -> torch.Tensor:
    """(M, h, w) float32 mask logits from stored ones: uint16 codes (v2, the inverse of `encode_mask_logits` up to
    its bound) or float16 / float32 logits (v3, read as they are)."""
    if stored.dtype != np.uint16:
        return torch.from_numpy(stored.astype(np.float32))
    step = np.float32(2 * bound / MASK_LOGIT_LEVELS)
    return torch.from_numpy(stored.astype(np.float32) * step - np.float32(bound))


def store_mask_logits(logits: np.ndarray, dtype: str = "float16") -> np.ndarray:
    """(M, h, w) float mask logits as format v3 stores them: float16 (half the bytes of float32) or float32
    (exact). Error bound of float16: a stored logit x is within |x| 2^-11 of the model's (no clipping: magnitudes
    beyond 65504 saturate there rather than become inf, which bilinear upsampling would turn into NaN), and
    bilinear upsampling (convex weights) keeps each upsampled logit within 2^-11 · L of the exact one, L the
    largest |logit| among the grid values it mixes; sigmoid is 1/4-Lipschitz, so a mask probability read back
    is within L / 8192 of the model's (1.2e-3 for L = 10, 0.2 away from mask borders where |x| is large and
    sigmoid flat: |x| 2^-11 sigmoid'(x) <= 1.1e-4 at the grid points themselves). The label changes this causes,
    measured against v2's uint16 codes over all logit scales: `python -m benchmark perf predictions` (README)."""
    if dtype == "float32":
        return np.asarray(logits, dtype=np.float32)
    if dtype != "float16":
        raise ValueError(f"mask logits are stored as float16 or float32, not {dtype}")
    return np.clip(np.asarray(logits, dtype=np.float32), -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16)


def fcclip_class_logits(class_logits: torch.Tensor, out_vocab_logits: torch.Tensor, category_overlap: torch.Tensor,
                        alpha: float, beta: float, valid: torch.Tensor | None = None) -> torch.Tensor:
    """FC-CLIP's class scores of the queries over the vocabulary whose columns are given, transcribed from
    bytedance/fc-clip fcclip/fcclip.py @7791b83 (FCCLIP.forward, inference branch; line numbers below):
    class_logits (Q, C + 1) the in-vocabulary classifier's logits with void last (l. 350 `outputs["pred_logits"]`),
    out_vocab_logits (Q, C) the out-of-vocabulary (CLIP) classifier's logits without void (l. 365, 367),
    category_overlap (C,) int64 1 where a class shares a name with a training class (l. 155-161),
    alpha, beta the geometric ensemble's exponents for those and the others, valid (Q,) bool or None: with
    ENSEMBLE_ON_VALID_MASK, whether a query's mask has a positive logit on the CLIP feature grid (l. 374-382).
    Returns (Q, C + 1) `mask_cls_results` (l. 402): log(class probabilities with void last + 1e-8), whose
    softmax FC-CLIP's semantic and panoptic inference take. Each class's logits do not depend on which other
    classes are asked, so running this on a subset of the columns is FC-CLIP run with that class list.
    Bit for bit under the conditions FC-CLIP's own output has: one image per batch (its evaluation's and the
    exporter's) and the same device and thread count. torch's CPU `pow` rounds a tensor's vectorised body and
    its scalar tail differently, and the tail's place depends on the tensor's size and on how threads split it:
    measured on 250 x 848 probabilities, 32 of 212,000 results differ in the last bit between 1 and 4 threads."""
    in_vocab_cls_results = class_logits[..., :-1]  # l. 366: remove void
    out_vocab_cls_probs = out_vocab_logits.softmax(-1)  # l. 370
    in_vocab_cls_results = in_vocab_cls_results.softmax(-1)  # l. 371
    if valid is not None:  # l. 374-382
        valid_masking = valid.to(in_vocab_cls_results.dtype).unsqueeze(-1)
        alpha = torch.ones_like(in_vocab_cls_results) * alpha * valid_masking
        beta = torch.ones_like(in_vocab_cls_results) * beta * valid_masking
    cls_logits_seen = (  # l. 387-395
        (in_vocab_cls_results ** (1 - alpha) * out_vocab_cls_probs**alpha).log()
        * category_overlap
    )
    cls_logits_unseen = (
        (in_vocab_cls_results ** (1 - beta) * out_vocab_cls_probs**beta).log()
        * (1 - category_overlap)
    )
    cls_results = cls_logits_seen + cls_logits_unseen
    is_void_prob = F.softmax(class_logits, dim=-1)[..., -1:]  # l. 398-402
    mask_cls_probs = torch.cat([
        cls_results.softmax(-1) * (1.0 - is_void_prob),
        is_void_prob], dim=-1)
    return torch.log(mask_cls_probs + 1e-8)


@dataclass
class SoftMasks:
    """One image's soft mask proposals as stored (mask logits at the model's output resolution) and the
    geometry that maps them to the image, as FC-CLIP's inference does."""

    stored: np.ndarray  # (M, h, w) mask logits: float16 / float32 (v3) or uint16 codes (v2, see encode_mask_logits)
    bound: float  # logit range of uint16 codes (v2)
    input_size: tuple[int, int]  # (H_in, W_in) the model's resized input before padding
    padded_size: tuple[int, int]  # (H_pad, W_pad) the padded input that the (h, w) grid covers
    image_size: tuple[int, int]  # (H, W) the original image: evaluation resolution
    device: str = "cpu"  # where the upsampling and inference run (the segmenter's device: a GPU makes it fast)
    semantic_at_input: bool = False  # semantic scores computed on the padded input, then resized (see module doc)
    # the producer's panoptic thresholds: FC-CLIP's eval configs all set 0.0 and 0.8 (OBJECT_MASK_THRESHOLD is 0.0
    # in fcclip_convnext_large_eval_ade20k.yaml, which the COCO, Cityscapes, A-847, PC and VOC ones inherit)
    object_threshold: float = 0.8
    overlap_threshold: float = 0.8
    valid: np.ndarray | None = None  # (M,) bool, FC-CLIP's ENSEMBLE_ON_VALID_MASK: mask positive on the CLIP grid
    nonempty: np.ndarray | None = None  # (M,) bool: mask probability >= 0.5 somewhere (see `has_pixels`)

    def __len__(self) -> int:
        return len(self.stored)

    def padded_logits(self) -> torch.Tensor:
        """(1, M, H_pad, W_pad) float32 mask logits upsampled to the padded input ("# upsample masks")."""
        logits = decode_mask_logits(self.stored, self.bound)[None].to(self.device)  # (1, M, h, w)
        return F.interpolate(logits, size=tuple(self.padded_size), mode="bilinear", align_corners=False)

    def probabilities(self) -> torch.Tensor:
        """(M, H, W) float32 mask probabilities at the image's resolution (FC-CLIP's upsampling, then sigmoid)."""
        logits = self.padded_logits()[0, :, : self.input_size[0], : self.input_size[1]].expand(1, -1, -1, -1)
        logits = F.interpolate(logits, size=tuple(self.image_size), mode="bilinear", align_corners=False)[0]
        return logits.sigmoid()

    def binary(self) -> np.ndarray:
        """(M, H, W) bool: mask probability >= 0.5, FC-CLIP's mask of a query (its panoptic `original_area`)."""
        return (self.probabilities() >= 0.5).cpu().numpy()

    def has_pixels(self, probabilities: torch.Tensor | None = None) -> np.ndarray:
        """(M,) bool: the binary mask is not empty; computed once (from `probabilities` when given)."""
        if self.nonempty is None:
            probs = self.probabilities() if probabilities is None else probabilities
            self.nonempty = (probs >= 0.5).flatten(1).any(1).cpu().numpy()
        return self.nonempty


def semantic_scores(mask_probs: torch.Tensor, class_probs: torch.Tensor) -> torch.Tensor:
    """(C, H, W) FC-CLIP's `semantic_inference`: (M, H, W) mask probabilities, (M, C) non-void class probs."""
    return torch.einsum("qc,qhw->chw", class_probs, mask_probs)


def semantic_from_soft_masks(mask_probs: torch.Tensor, class_probs: torch.Tensor, class_ids: np.ndarray) -> np.ndarray:
    """(H, W) int64 class ids: argmax of `semantic_scores`, a band of rows at a time (bounded memory)."""
    num_classes = class_probs.shape[1]
    _, height, width = mask_probs.shape
    rows = max(1, SEMANTIC_CHUNK_ELEMENTS // max(1, num_classes * width))
    best = torch.empty(height, width, dtype=torch.int64, device=mask_probs.device)
    class_probs = class_probs.to(mask_probs.device)
    for top in range(0, height, rows):
        best[top:top + rows] = semantic_scores(mask_probs[:, top:top + rows], class_probs).argmax(dim=0)
    return class_ids[best.cpu().numpy()]


def semantic_resized_from_input(masks: SoftMasks, class_probs: torch.Tensor, class_ids: np.ndarray) -> np.ndarray:
    """(H, W) int64 class ids the other way FC-CLIP orders it: `semantic_scores` on the padded input, cropped and
    resized bilinearly to the image (`sem_seg_postprocess` of the scores), argmax. Classes a chunk at a time
    (bounded memory); a later chunk takes a pixel only with a strictly higher score (argmax's first index)."""
    mask_probs = masks.padded_logits()[0].sigmoid()  # (M, H_pad, W_pad)
    class_probs = class_probs.to(mask_probs.device)
    (height, width), (in_height, in_width) = masks.image_size, masks.input_size
    per_class = mask_probs.shape[1] * mask_probs.shape[2] + height * width
    chunk = max(1, SEMANTIC_CHUNK_ELEMENTS // per_class)
    best_score = best = None
    for first in range(0, class_probs.shape[1], chunk):
        scores = semantic_scores(mask_probs, class_probs[:, first:first + chunk])[:, :in_height, :in_width]
        scores = F.interpolate(scores.expand(1, -1, -1, -1), size=(height, width), mode="bilinear",
                               align_corners=False)[0]  # (c, H, W)
        chunk_score, chunk_best = scores.max(dim=0)
        if best is None:
            best_score, best = chunk_score, chunk_best
        else:
            better = chunk_score > best_score
            best_score, best = torch.where(better, chunk_score, best_score), torch.where(better, chunk_best + first, best)
    return class_ids[best.cpu().numpy()]


def paste_segment(pan_seg: np.ndarray, segments: list[SegmentInfo], scores: list[float],
                  stuff_segment: dict[int, int], visible: np.ndarray, visible_area: int, class_id: int,
                  isthing: bool, score: float) -> None:
    """Paste one kept query into the panoptic map as in MaskFormer / FC-CLIP: a thing is a new instance, a stuff
    class merges into its one segment (created by its first query, whose score it keeps)."""
    if not isthing and class_id in stuff_segment:
        segment_id = stuff_segment[class_id]
        pan_seg[visible] = segment_id
        segments[segment_id - 1].area += visible_area
        return
    segment_id = len(segments) + 1
    if not isthing:
        stuff_segment[class_id] = segment_id
    pan_seg[visible] = segment_id
    segments.append(SegmentInfo(segment_id, class_id, False, isthing, visible_area))
    scores.append(score)


def panoptic_from_soft_masks(mask_probs: torch.Tensor, probs_with_void: torch.Tensor, vocab: Vocabulary,
                             object_threshold: float, overlap_threshold: float
                             ) -> tuple[np.ndarray, list[SegmentInfo], list[float]]:
    """FC-CLIP's `panoptic_inference` (see the module doc): (M, H, W) mask probabilities, (M, C + 1) class
    probabilities over `vocab` with void last. Returns the segment map (0 = none), segments, scores."""
    ids = np.asarray(vocab.ids, dtype=np.int64)
    isthing = {c.id: c.isthing for c in vocab.classes}
    scores, labels = probs_with_void.to(mask_probs.device).max(-1)
    keep = labels.ne(len(ids)) & (scores > object_threshold)
    kept_scores, kept_labels, kept_masks = scores[keep], labels[keep], mask_probs[keep]
    pan_seg = np.zeros(mask_probs.shape[1:], dtype=np.int64)
    segments: list[SegmentInfo] = []
    segment_scores: list[float] = []
    if kept_masks.shape[0] == 0:
        return pan_seg, segments, segment_scores
    owner = (kept_scores.view(-1, 1, 1) * kept_masks).argmax(0)  # (H, W) index into the kept queries
    stuff_segment: dict[int, int] = {}
    for k in range(kept_labels.shape[0]):
        class_id = int(ids[int(kept_labels[k])])
        won = owner == k
        inside = kept_masks[k] >= 0.5
        won_area, original_area = int(won.sum()), int(inside.sum())
        visible = (won & inside).cpu().numpy()
        visible_area = int(visible.sum())
        if won_area == 0 or original_area == 0 or visible_area == 0 or won_area / original_area < overlap_threshold:
            continue
        paste_segment(pan_seg, segments, segment_scores, stuff_segment, visible, visible_area, class_id,
                      bool(isthing[class_id]), float(kept_scores[k]))
    return pan_seg, segments, segment_scores


def outputs_from_soft_masks(masks: SoftMasks, probs: torch.Tensor, void_probs: torch.Tensor, vocab: Vocabulary,
                            panoptic: bool) -> SegmentationOutput:
    """SegmentationOutput from soft masks, (M, C) non-void class probabilities over `vocab` and (M,) void
    probabilities (zeros for a model without a void class), by FC-CLIP's inference with the producer's
    thresholds (`masks.object_threshold`, `masks.overlap_threshold`)."""
    ids = np.asarray(vocab.ids, dtype=np.int64)
    if len(masks) == 0:
        return SegmentationOutput(sem_seg=np.full(tuple(masks.image_size), ids[0], dtype=np.int64),
                                  pan_seg=np.zeros(tuple(masks.image_size), dtype=np.int64) if panoptic else None)
    if masks.semantic_at_input:
        sem_seg = semantic_resized_from_input(masks, probs.float(), ids)
        if not panoptic:
            return SegmentationOutput(sem_seg=sem_seg)
        mask_probs = masks.probabilities()  # (M, H, W)
    else:
        mask_probs = masks.probabilities()  # (M, H, W)
        sem_seg = semantic_from_soft_masks(mask_probs, probs.float(), ids)
        if not panoptic:
            return SegmentationOutput(sem_seg=sem_seg)
    probs_with_void = torch.cat([probs.float(), void_probs.float()[:, None]], dim=1)
    pan_seg, segments, scores = panoptic_from_soft_masks(mask_probs, probs_with_void, vocab, masks.object_threshold,
                                                         masks.overlap_threshold)
    return SegmentationOutput(sem_seg=sem_seg, pan_seg=pan_seg, segments=segments, scores=scores)


def semantic_from_masks(masks: np.ndarray, probs: torch.Tensor, class_ids: np.ndarray) -> np.ndarray:
    """(H, W) int64 class ids from (M, H, W) bool masks and (M, C) probabilities over `class_ids` (C,)."""
    num, height, width = masks.shape
    scores = probs.T.float() @ torch.from_numpy(masks.reshape(num, -1)).float()  # (C, H*W)
    return class_ids[scores.argmax(dim=0).numpy()].reshape(height, width)


def panoptic_from_masks(masks: np.ndarray, probs: torch.Tensor, vocab: Vocabulary, object_threshold: float,
                        overlap_threshold: float) -> tuple[np.ndarray, list[SegmentInfo], list[float]]:
    """Panoptic segment map (0 = no segment), segments and their scores from binary masks (format v1)."""
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
        paste_segment(pan_seg, segments, scores, stuff_segment, visible, visible_area, class_id,
                      bool(isthing[class_id]), float(best_prob[proposal]))
    return pan_seg, segments, scores


def outputs_from_masks(masks: np.ndarray, probs: torch.Tensor, vocab: Vocabulary, panoptic: bool,
                       object_threshold: float = 0.8, overlap_threshold: float = 0.8) -> SegmentationOutput:
    """SegmentationOutput from (M, H, W) bool mask proposals (format v1) and (M, C) class probabilities."""
    sem_seg = semantic_from_masks(masks, probs, np.asarray(vocab.ids, dtype=np.int64))
    if not panoptic:
        return SegmentationOutput(sem_seg=sem_seg)
    pan_seg, segments, scores = panoptic_from_masks(masks, probs, vocab, object_threshold, overlap_threshold)
    return SegmentationOutput(sem_seg=sem_seg, pan_seg=pan_seg, segments=segments, scores=scores)
