"""The learning baselines' trainable part on `model=cached` (an external model's exported predictions, e.g.
FC-CLIP's), where there are no dense features to adapt: it adapts each proposal's exported class scores.

    s = a proposal's exported class scores over every column   (M, score_width): class logits (+ void),
        then FC-CLIP's out-of-vocabulary logits (format v3 with an ensemble)
    s' = s + MLP(s)      residual MLP (`hidden` units), output layer initialised to zero
    P over S_t = softmax(segmenter.class_logits(s', S_t))   (S_t's columns and void, through FC-CLIP's
                         ensemble where exported: exactly as zero-shot reads s, so before training the
                         baseline *is* the exported model)

Targets are mask-level, as MaskFormer-style training labels queries: a proposal (its mask: probability >= 0.5
for soft masks) is labelled with the ground-truth class covering most of it, if that class covers at least
`proposal_match_fraction` of its area; otherwise it is left out (its pixels are mostly unlabelled: classes
outside C_t, which are not void). Loss: cross-entropy over S_t and void. Prediction: P and void through the
segmenter's own inference (FC-CLIP's for soft masks).

The training set streams through the dense baselines' store on disk (`TrainingSet`: one row of score_width
float32 scores and one class id per labelled proposal). Embeddings are not adapted (FC-CLIP exports carry no
text classifier to classify adapted embeddings against); that is the honest limit of this head. Exports of
FC-CLIP's ResNet configs (ENSEMBLE_ON_VALID_MASK) are refused: their per-query valid masks do not travel with
the stored score rows.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.training_set import IGNORE_INDEX, TrainingSet
from benchmark.data.types import BACKGROUND_LABEL, IGNORE_LABEL, ImageInput, Sample, Vocabulary
from benchmark.errors import UserError
from benchmark.method import SegmentationOutput
from benchmark.models.inference import outputs_from_probs


class ScoreHead(nn.Module):
    """(N, K[+1]) class scores -> adapted scores; starts as the identity (zero-initialised output layer)."""

    def __init__(self, columns: int, hidden: int) -> None:
        super().__init__()
        if hidden > 0:
            self.residual = nn.Sequential(nn.Linear(columns, hidden), nn.GELU(), nn.Linear(hidden, columns))
        else:
            self.residual = nn.Sequential(nn.Linear(columns, columns))
        nn.init.zeros_(self.residual[-1].weight)
        nn.init.zeros_(self.residual[-1].bias)

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        return scores + self.residual(scores)

    def trained_parameter_count(self) -> int:
        return sum(p.numel() for p in self.residual.parameters())


def proposal_votes(masks: np.ndarray, sem_seg: np.ndarray) -> np.ndarray:
    """(M, 3) int64 per (M, H, W) bool mask: (labelled class covering most of it, its pixel count, the mask's
    area); class IGNORE_LABEL and count 0 where no labelled pixel falls inside. A protocol's BACKGROUND_LABEL is
    no class: it does not vote (the dense baselines skip it too)."""
    labelled = (sem_seg != IGNORE_LABEL) & (sem_seg != BACKGROUND_LABEL)
    votes = np.zeros((len(masks), 3), dtype=np.int64)
    votes[:, 0] = IGNORE_LABEL
    for m, mask in enumerate(masks):
        votes[m, 2] = int(mask.sum())
        counts = np.bincount(sem_seg[mask & labelled].ravel())
        if len(counts) and counts.max() > 0:
            votes[m, :2] = int(counts.argmax()), int(counts.max())
    return votes


def merge_votes(known: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Votes of one image's proposals over the union of two label maps. Exact because the classes of different
    steps label disjoint pixels: a class's count comes from one step only, so the best class of the union is
    the better of the two bests (ties to the smaller class id, as bincount's argmax over the union would)."""
    better = (new[:, 1] > known[:, 1]) | ((new[:, 1] == known[:, 1]) & (new[:, 0] < known[:, 0]))
    return np.where(better[:, None], new, known)


def targets_from_votes(votes: np.ndarray, match_fraction: float) -> np.ndarray:
    """(M,) dataset class id per proposal: its best class if that covers >= `match_fraction` of it, else
    IGNORE_LABEL."""
    covered = (votes[:, 1] > 0) & (votes[:, 1] >= match_fraction * votes[:, 2])
    return np.where(covered, votes[:, 0], IGNORE_LABEL)


def proposal_targets(masks: np.ndarray, sem_seg: np.ndarray, match_fraction: float) -> np.ndarray:
    """(M,) dataset class id per (M, H, W) bool mask: the labelled class covering most of it when it covers at
    least `match_fraction` of the mask's area, else IGNORE_LABEL."""
    return targets_from_votes(proposal_votes(masks, sem_seg), match_fraction)


class CachedScoreTraining:
    """What the learning baselines delegate to on model=cached: the head, its training set, loss, prediction."""

    def __init__(self, segmenter, hidden: int, match_fraction: float) -> None:
        self.segmenter = segmenter
        self.match_fraction = match_fraction
        if segmenter.ensemble and segmenter.ensemble["on_valid_mask"]:
            raise UserError(f"the learning baselines' head on model=cached does not support exports with FC-CLIP's "
                            f"ENSEMBLE_ON_VALID_MASK ({segmenter.directory}); zeroshot and knnclip do")
        self.head = ScoreHead(segmenter.score_width, hidden)

    def training_set(self, samples: Iterable[Sample]) -> TrainingSet:
        data = TrainingSet(torch.float32)  # (N, score_width) scores, (N,) class ids of labelled proposals
        batch: list[Sample] = []

        def store() -> None:
            for sample, feats in zip(batch, self.segmenter.cached_image_features(batch)):
                targets = proposal_targets(feats.mask_stack(), sample.sem_seg, self.match_fraction)
                keep = targets != IGNORE_LABEL
                if keep.any():
                    data.append(feats.logits[torch.from_numpy(keep)], targets[keep])
            batch.clear()

        for sample in samples:
            batch.append(sample)
            if len(batch) == self.segmenter.config.batch_size:
                store()
        store()
        return data

    def joint_training_set(self, votes: dict[str, np.ndarray]) -> TrainingSet:
        """The labelled proposals of every image in `votes` (image id -> its proposals' merged votes), their
        scores read back from the exported predictions (the frozen model's outputs), in `votes` order."""
        data = TrainingSet(torch.float32)  # (N, score_width) scores, (N,) class ids of labelled proposals
        for image_id, image_votes in votes.items():
            targets = targets_from_votes(image_votes, self.match_fraction)
            keep = targets != IGNORE_LABEL
            if keep.any():
                data.append(self.segmenter.class_scores(image_id)[torch.from_numpy(keep)], targets[keep])
        return data

    def image_votes(self, samples: list[Sample]) -> list[np.ndarray]:
        """`proposal_votes` of each sample's exported proposals under its labels."""
        return [proposal_votes(feats.mask_stack(), sample.sem_seg)
                for sample, feats in zip(samples, self.segmenter.cached_image_features(samples))]

    def loss(self, adapted: torch.Tensor, targets: torch.Tensor, vocab: Vocabulary) -> torch.Tensor:
        """Cross-entropy over `vocab` (S_t) and void; targets are positions in `vocab` or IGNORE_INDEX."""
        return F.cross_entropy(self.segmenter.class_logits(adapted, vocab), targets, ignore_index=IGNORE_INDEX)

    @torch.no_grad()
    def predict(self, images: list[ImageInput], vocab: Vocabulary) -> list[SegmentationOutput]:
        outputs = []
        device = next(self.head.parameters()).device
        for image, feats in zip(images, self.segmenter.cached_image_features(images)):
            scores = self.head(feats.logits.to(device)).cpu()
            probs, void = self.segmenter.probs_with_void(scores, vocab)
            outputs.append(outputs_from_probs(feats, probs, vocab, panoptic=image.panoptic, void_probs=void))
        return outputs
