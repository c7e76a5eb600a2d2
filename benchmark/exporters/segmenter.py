"""This project's segmenters -> predictions format v3 (benchmark/models/cached/format.py): what
`python -m benchmark export-predictions` writes, for later runs with `model=cached` that skip the backbone."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from benchmark.data.types import Sample, SegmentationDataset, Vocabulary
from benchmark.models.base import Segmenter
from benchmark.models.cached.format import (DEFAULT_MASK_LOGIT_BOUND, check_folder, export_images, image_arrays,
                                            write_meta)


@torch.no_grad()
def export_predictions(segmenter: Segmenter, images: list[tuple[SegmentationDataset, Sequence[int]]],
                       directory: Path | str, vocabulary: Vocabulary, producer: str = "",
                       progress=None) -> tuple[int, int]:
    """Write format v3 predictions of a project segmenter for the given (dataset, indices) images; returns
    (written, kept). Its proposals become mask logits of +-64 at the image's size, its class logits are
    logit_scale · cosine over `vocabulary` (no void, no ensemble), with its mask embeddings and text classifier.

    Resumable (`export_images`): an image whose file exists is kept, provided meta.json there describes the
    same producer, vocabulary and format (anything else is refused rather than mixed).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text = segmenter.text_embeddings(vocabulary)  # (K, D)
    check_folder(directory, producer, vocabulary.name)
    write_meta(directory, vocabulary.name, vocabulary.ids, void=False, embedding_dim=int(text.shape[1]),
               logit_scale=segmenter.logit_scale, producer=producer, text_embeddings=text.numpy())

    def predict(samples: list[Sample]) -> list[dict[str, np.ndarray]]:
        out = []
        for sample, feats in zip(samples, segmenter.image_features(samples)):
            logits = segmenter.logit_scale * feats.embeddings @ text.T  # (M, K)
            mask_logits = np.where(feats.mask_stack(), DEFAULT_MASK_LOGIT_BOUND, -DEFAULT_MASK_LOGIT_BOUND)
            size = (sample.height, sample.width)
            out.append(image_arrays(mask_logits, logits, size, size, feats.embeddings))
        return out

    return export_images(images, directory, segmenter.config.batch_size, predict, progress)
