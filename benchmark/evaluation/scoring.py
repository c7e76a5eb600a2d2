"""The scoring loop every face shares: predict the validation images of a step in batches and sum the raw
statistics (confusion matrix, per-image counts, panoptic sums) against the protocol's ground truth.

`covseg run` (benchmark/runner.py) calls it with its method's `predict`; `StreamEvaluator`
(benchmark/evaluation/stream_evaluator.py) with the prediction function of any training loop. One loop, so a
number from either face equals the other's.
"""
from __future__ import annotations

import hashlib

from typing import Any, Callable, Sequence

import numpy as np

from benchmark import distributed
from benchmark.data.demo import public_draw
from benchmark.data.types import ImageInput, SegmentationDataset
from benchmark.errors import UserError
from benchmark.evaluation.panoptic import PanopticEvaluator
from benchmark.evaluation.per_image import PerImageCounts
from benchmark.evaluation.semantic import SemanticEvaluator
from benchmark.method import SegmentationOutput, filter_sample
from benchmark.protocol import Protocol

Predict = Callable[[list[ImageInput]], Sequence[SegmentationOutput]]


def score_validation(val: SegmentationDataset, count: int, protocol: Protocol, scored: list[int], panoptic: bool,
                     predict: Predict, batch_size: int, who: str, progress: Any = None, desc: str = "",
                     oracle: bool = False) -> dict[str, np.ndarray]:
    """Predict the first `count` validation images with `predict` and return the raw statistics of the step:
    the confusion matrix, the per-image counts, on panoptic streams the per-class PQ sums, and the ids of the
    images scored. Ground truth outside `scored` (S_t, or every class) is ignored (VOID), or a background row,
    and images may not count: as the protocol says (benchmark/protocol.py). `predict` sees `ImageInput`s only
    (pixels, no labels); `who` names it in errors. Under torchrun each rank predicts its shard of the images
    and the statistics are summed."""
    scored = list(scored)
    semantic = SemanticEvaluator(protocol.confusion_size)  # K, or K + 1 with a background row
    per_image = PerImageCounts(protocol.confusion_size)  # sparse per-image counts: bootstrap intervals over images
    panoptic_evaluator = PanopticEvaluator([c.isthing for c in val.vocabulary.classes]) if panoptic else None
    indices = distributed.shard(range(count))
    starts = range(0, len(indices), batch_size)
    if progress is not None:
        starts = progress(starts, desc=desc, total=(len(indices) + batch_size - 1) // batch_size)
    for start in starts:
        loaded = [(i, val.load(i)) for i in indices[start:start + batch_size]]
        # the protocol's ground truth; None: the image does not count at this step (and is not predicted)
        truths = [(i, s, protocol.evaluation_truth(s, filter_sample(s, scored), scored))
                  for i, s in loaded if s is not None]
        counted = [(i, s, gt) for i, s, gt in truths if gt is not None]
        batch = [s for _, s, _ in counted]
        outputs = predict([ImageInput.of(s, panoptic, oracle) for s in batch])
        if len(outputs) != len(counted):
            raise UserError(f"{who} returned {len(outputs)} outputs for {len(counted)} images")
        for (image_index, sample, gt), output in zip(counted, outputs):
            if output.sem_seg.shape != gt.sem_seg.shape:
                raise UserError(f"{who}: prediction of image {sample.image_id} is "
                                   f"{output.sem_seg.shape}, its image {gt.sem_seg.shape}")
            semantic.process(output.sem_seg, gt.sem_seg)
            per_image.record(image_index, semantic.confusion)
            if panoptic_evaluator is not None:
                if output.pan_seg is None:
                    raise UserError(f"{who} returned no panoptic output on a panoptic stream")
                panoptic_evaluator.process(output.pan_seg, output.segments, gt.pan_seg, gt.segments)
    stats = {"confusion": semantic.confusion}
    if panoptic_evaluator is not None:
        stats.update({f"pq_{name}": values for name, values in panoptic_evaluator.stats.items()})
    # the ids of the images scored, in validation order: which validation set the numbers are over
    image_ids = distributed.gather_sorted([(i, val.image_id(i)) for i, _ in per_image.parts])
    return {**{name: distributed.all_reduce_sum(values) for name, values in stats.items()}, **per_image.gathered(),
            "image_ids": np.array(image_ids, dtype=str)}


def validation_record(image_ids: Sequence[str], val: SegmentationDataset, count: int, train: SegmentationDataset,
                      on_error: str) -> dict:
    """The manifest's `data`, for every face that scores a stream: the validation images the last step was
    scored on (`image_ids`; count and a digest of their ids: the leaderboard never averages or pairs runs over
    different validation sets), the images data.on_error=skip left out of the first `count` validation images
    and of training (those this process met), and whether the images are the demo's public draw (any method
    can regenerate its labels, so it ranks nothing)."""
    scored = [str(i) for i in image_ids]
    kept = set(scored)
    return {"on_error": on_error, "validation_images": len(scored),
            "public_draw": public_draw(getattr(val, "image_dir", None)),
            "validation_digest": hashlib.sha256("\n".join(scored).encode()).hexdigest()[:16],
            "skipped": {"val": [i for i in (val.image_id(j) for j in range(count)) if i not in kept],
                        "train": sorted(getattr(train, "skipped", {}))}}
