"""The images an exporter covers: a stream's training images and the validation images every step evaluates,
opened as a run opens them."""
from __future__ import annotations

from typing import Sequence

from benchmark.data.types import SegmentationDataset, Vocabulary
from benchmark.progress import Progress
from benchmark.runner import validation_count
from streams.library import open_stream_data


def stream_images(cfg) -> tuple[list[tuple[SegmentationDataset, Sequence[int]]], Vocabulary, Progress]:
    """([(train split, the stream's training images), (validation split, the images every step evaluates)],
    the dataset's vocabulary, the progress display)."""
    progress = Progress(quiet=cfg.quiet)
    train, val, stream = open_stream_data(cfg, progress.bar)
    train_images = sorted({index for step in stream.train_indices for index in step})
    return [(train, train_images), (val, range(validation_count(cfg, val)))], train.vocabulary, progress
