"""Zero-shot: the frozen open-vocabulary segmenter alone. It learns nothing, so it cannot forget; every
continual method should beat it on the classes it has been shown."""
from __future__ import annotations

from dataclasses import dataclass

from benchmark.data.types import ImageInput, Vocabulary
from benchmark.method import ContinualMethod, SegmentationOutput, StepData, register_method
from benchmark.models.inference import outputs_from_probs


@register_method("zeroshot")
class ZeroShot(ContinualMethod):
    @dataclass
    class Config:
        pass

    def learn(self, step: StepData) -> None:
        pass

    def predict(self, images: list[ImageInput], vocab: Vocabulary) -> list[SegmentationOutput]:
        return [
            outputs_from_probs(feats, self.segmenter.base_probs(feats, vocab), vocab, panoptic=image.panoptic,
                               void_probs=self.segmenter.void_probs(feats, vocab))
            for image, feats in zip(images, self.segmenter.cached_image_features(images))
        ]
