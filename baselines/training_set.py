"""The learning baselines' training store: one row per training image (dense baselines: frozen inputs and a
label grid) or per labelled proposal (model=cached: exported class scores and a class id), on disk."""
from __future__ import annotations

import numpy as np
import torch

from benchmark.disk_rows import DiskRows

IGNORE_INDEX = -100  # target index of ignored label samples in the loss


class TrainingSet:
    """Frozen inputs and label grids of the images one step trains on, streamed through a store on disk
    (inputs in the segmenter's storage dtype, labels uint16), so memory does not grow with the number of
    training images. `batch(indices)` reads rows back as float32 inputs and int64 dataset class ids."""

    def __init__(self, storage_dtype: torch.dtype = torch.float32) -> None:
        self.numpy_dtype = np.float16 if storage_dtype == torch.float16 else np.float32
        self.inputs: DiskRows | None = None  # (N, g, g, D) dense features or (N, 1 + g*g, width) tokens
        self.targets: DiskRows | None = None  # (N, g·s, g·s) dataset class ids, IGNORE_LABEL = unlabelled
        self.rows: list[int] | None = None  # a view's rows of the store (`subset`); None = all, in order

    def __len__(self) -> int:
        if self.rows is not None:
            return len(self.rows)
        return len(self.targets) if self.targets is not None else 0

    @property
    def nbytes(self) -> int:
        """Bytes of the whole store on disk."""
        return sum(rows.nbytes for rows in (self.inputs, self.targets) if rows is not None)

    def subset(self, rows: list[int]) -> "TrainingSet":
        """A view of the store's `rows`, in that order (it shares, and does not own, the files)."""
        view = TrainingSet()
        view.numpy_dtype, view.inputs, view.targets, view.rows = self.numpy_dtype, self.inputs, self.targets, list(rows)
        return view

    def append(self, inputs: torch.Tensor, targets: np.ndarray) -> None:
        if self.inputs is None:
            self.inputs = DiskRows(inputs.shape[1:], self.numpy_dtype)
            self.targets = DiskRows(targets.shape[1:], np.uint16)  # class ids and IGNORE_LABEL fit
        self.inputs.append(inputs.float().numpy())
        self.targets.append(targets)

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, ...) float32 inputs and (B, g·s, g·s) int64 targets of the rows `indices`."""
        if self.rows is not None:
            indices = [self.rows[int(i)] for i in indices]
        inputs = torch.from_numpy(self.inputs.read(indices).astype(np.float32))
        return inputs, torch.from_numpy(self.targets.read(indices).astype(np.int64))

    def close(self) -> None:
        for rows in (self.inputs, self.targets):
            if rows is not None:
                rows.close()
