"""Zero-shot: the frozen open-vocabulary segmenter alone. It learns nothing, so it cannot forget; every
continual method should beat it on the classes it has been shown."""
from __future__ import annotations

from dataclasses import dataclass

from benchmark.data.types import Sample, Vocabulary
from benchmark.method import ContinualMethod, SegmentationOutput, StepData, register_method
from benchmark.models.inference import outputs_from_probs


@register_method("zeroshot")
class ZeroShot(ContinualMethod):
    @dataclass
    class Config:
        pass

    def learn(self, step: StepData) -> None:
        pass

    def predict(self, batch: list[Sample], vocab: Vocabulary) -> list[SegmentationOutput]:
        return [
            outputs_from_probs(feats, self.segmenter.base_probs(feats, vocab), vocab,
                               panoptic=sample.pan_seg is not None)
            for sample, feats in zip(batch, self.segmenter.cached_image_features(batch))
        ]
