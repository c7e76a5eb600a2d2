"""The continual-segmentation protocol of a run: `protocol=covseg|mib|plop|eclipse|comformer` (configs/protocol/).

The shipped streams' class splits equal upstream's (tests/streams/test_streams.py); the protocol around a split is four
choices, which each preset sets as its paper's code does (configs/protocol/<name>.yaml cites the lines):
- image selection: `stream.mode` (overlap / disjoint) or `stream.train_lists`, applied by streams/builder.py;
- training labels: pixels of classes other than C_t (`train_labels`) and void pixels (`train_void`) stay ignored,
  or become background: the vocabulary's own background class where it has one (VOC's class 0), else
  BACKGROUND_LABEL (ADE20K: MiB's class 0, which no class id of this project takes);
- evaluation images (`eval_images`): every validation image, or only those holding a pixel of a class scored
  at the step (`with_scored`: MiB and PLOP drop the others);
- unseen classes at evaluation (`eval_unseen`) and void (`eval_void`): ignored, or ground truth of a background
  row (the background class, else an extra row K of the confusion matrix), where a prediction of a scored
  class is a false positive. The extra row is none of the stream's classes, so no class mean includes it.

`background_if_no_class` (void only) follows how the upstream files store void: as label 0 on ADE20K, where it
goes wherever 0 goes (background), as 255 on VOC, where it stays ignored.
The panoptic ground truth is the same under every protocol: segments of other classes are dropped (VOID).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from benchmark.data.types import BACKGROUND_LABEL, IGNORE_LABEL, Sample, Vocabulary

CHOICES = {
    "protocol.train_labels": ("ignore", "background"),
    "protocol.train_void": ("ignore", "background", "background_if_no_class"),
    "protocol.eval_images": ("all", "with_scored"),
    "protocol.eval_unseen": ("ignore", "background"),
    "protocol.eval_void": ("ignore", "background", "background_if_no_class"),
}


def background_class(vocabulary: Vocabulary) -> int | None:
    """The id of the vocabulary's class named "background" (VOC: 0), None when it has none (ADE20K, COCO)."""
    return next((c.id for c in vocabulary.classes if c.name == "background"), None)


@dataclass(frozen=True)
class Protocol:
    name: str
    train_labels: str
    train_void: str
    eval_images: str
    eval_unseen: str
    eval_void: str
    background: int | None  # the vocabulary's background class, None when it has none
    num_classes: int  # K: the vocabulary's classes are 0..K-1

    @classmethod
    def of(cls, config: Any, vocabulary: Vocabulary) -> "Protocol":
        """From the run config's `protocol` section (benchmark.config.ProtocolConfig)."""
        return cls(config.name, config.train_labels, config.train_void, config.eval_images, config.eval_unseen,
                   config.eval_void, background_class(vocabulary), len(vocabulary))

    def describe(self, stream_cfg: Any) -> dict:
        """What the manifest records: the preset, its policies and the image selection actually used."""
        selection = f"lists:{stream_cfg.train_lists}" if stream_cfg.train_lists else stream_cfg.mode
        return {"name": self.name, "selection": selection, "train_labels": self.train_labels,
                "train_void": self.train_void, "eval_images": self.eval_images, "eval_unseen": self.eval_unseen,
                "eval_void": self.eval_void}

    def _void_is_background(self, policy: str) -> bool:
        return policy == "background" or (policy == "background_if_no_class" and self.background is None)

    def _to_background(self, sem_seg: np.ndarray, kept: list[int], others: str, void: str) -> np.ndarray | None:
        """Pixels that become background under the policies `others` (classes outside `kept`) and `void`; None
        when there are none by policy (the filtered labels stand as they are)."""
        is_void = sem_seg == IGNORE_LABEL
        mask = ~is_void & ~np.isin(sem_seg, kept) if others == "background" else None
        if self._void_is_background(void):
            mask = is_void if mask is None else mask | is_void
        return mask

    # ------------------------------------------------------------------ training
    def training_labels(self, sample: Sample, filtered: Sample, new_classes: list[int]) -> Sample:
        """The training sample of step t: `filtered` (benchmark.method.filter_sample: other classes ignored,
        their panoptic segments dropped) with the protocol's background where it says so."""
        mask = self._to_background(sample.sem_seg, new_classes, self.train_labels, self.train_void)
        if mask is None:
            return filtered
        label = BACKGROUND_LABEL if self.background is None else self.background
        return replace(filtered, sem_seg=np.where(mask, label, filtered.sem_seg))

    # ------------------------------------------------------------------ evaluation
    @property
    def confusion_size(self) -> int:
        """K, or K + 1 when unseen classes or void are scored as a background row the vocabulary lacks."""
        extra_row = self.background is None and (
            self.eval_unseen == "background" or self._void_is_background(self.eval_void))
        return self.num_classes + int(extra_row)

    def evaluation_truth(self, sample: Sample, filtered: Sample, scored: list[int]) -> Sample | None:
        """The ground truth an image is scored against at a step that scores the classes `scored` (S_t, or every
        class with eval.vocabulary=all): `filtered` (other classes ignored) with the protocol's background
        row; None when the image does not count (eval_images=with_scored and no pixel of a scored class,
        the background class not counting as one)."""
        if self.eval_images == "with_scored":
            foreground = [c for c in scored if c != self.background]
            if not np.isin(sample.sem_seg, foreground).any():
                return None
        mask = self._to_background(sample.sem_seg, scored, self.eval_unseen, self.eval_void)
        if mask is None:
            return filtered
        row = self.num_classes if self.background is None else self.background
        return replace(filtered, sem_seg=np.where(mask, row, filtered.sem_seg))
