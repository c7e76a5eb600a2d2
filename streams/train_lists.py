"""`stream.train_lists=DIR`: per-step training image lists given as files (MiB's split files, or the lists
`streams lists` writes), read in place of `stream.mode`'s selection, and written from a stream.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.data.types import SegmentationDataset
from benchmark.errors import UserError


def read_train_lists(folder: Path | str, num_steps: int, train: SegmentationDataset) -> list[list[int]]:
    """`stream.train_lists=DIR`: the training images of step t from DIR/train-<t>.txt (image ids, one per line)
    or DIR/train-<t>.npy (MiB's split files: indices into the training split in file-name order, which is the
    order of the readers here; for VOC, the order of train_aug.txt). One file per step, none more; each step's
    images in ascending index order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"stream.train_lists={folder} is not a folder")
    found: dict[int, list[Path]] = {}
    for path in sorted(folder.glob("train-*")):
        step = path.stem[len("train-"):]
        if path.suffix in (".txt", ".npy") and step.isdigit():
            found.setdefault(int(step), []).append(path)
    if sorted(found) != list(range(num_steps)) or any(len(paths) > 1 for paths in found.values()):
        names = ", ".join(p.name for paths in found.values() for p in paths) or "none"
        raise UserError(f"stream.train_lists={folder}: expected exactly one train-<t>.txt or train-<t>.npy for each "
                        f"step t = 0..{num_steps - 1}, found {names}")
    index_of = {train.image_id(i): i for i in range(len(train))}
    lists = []
    for t in range(num_steps):
        path = found[t][0]
        if path.suffix == ".npy":
            try:
                indices = np.load(path, allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:  # truncated, or not an .npy file
                raise UserError(f"{path}: not a readable .npy array ({str(exc).splitlines()[0]})") from None
            if indices.ndim != 1 or indices.dtype.kind not in "iu":
                raise UserError(f"{path}: expected a 1-D array of image indices, got {indices.dtype} {indices.shape}")
            bad = indices[(indices < 0) | (indices >= len(train))]
            if bad.size:
                raise UserError(f"{path}: index {int(bad[0])} outside the {len(train)} training images")
            chosen = {int(i) for i in indices}
        else:
            names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            unknown = [n for n in names if n not in index_of]
            if unknown:
                raise UserError(f"{path}: image '{unknown[0]}' is not in the training split ({len(unknown)} unknown)")
            chosen = {index_of[n] for n in names}
        lists.append(sorted(chosen))
    return lists


def write_train_lists(stream, folder: Path | str) -> list[Path]:
    """The per-step training images of `stream` (a streams.builder.Stream) as DIR/train-<t>.txt (image ids),
    readable by `stream.train_lists`."""
    from benchmark.io import atomic_write_text

    paths = [Path(folder) / f"train-{t}.txt" for t in range(stream.num_steps)]
    for path, ids in zip(paths, stream.train_image_ids):
        atomic_write_text(path, "".join(f"{i}\n" for i in ids))
    return paths
