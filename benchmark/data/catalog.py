"""The dataset catalog: how a dataset sits under the data root (`DatasetSpec`), how `prepare` creates it
(`PrepareCommand`), and `build_dataset(name, split, root)`, the one entry point. Datasets register here from
their own module in `benchmark/data/datasets/` (one module per dataset: layout, reader choice, `prepare`);
import `benchmark.data.datasets`, which loads them all, rather than this module.

`root` is the data root (config `data.root=`, else `default_data_root()`: env DETECTRON2_DATASETS, else
`./datasets`). A missing folder raises a one-line DataError naming the expected path, the setting that moves
it and the command that creates it. Layouts follow the community's detectron2 folders (MaskFormer / FC-CLIP /
SAN), so numbers are comparable with published ones.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from benchmark.data.readers import CocoPanopticFolder, SemSegFolder
from benchmark.data.types import IGNORE_LABEL, VOCABULARY_DIR, Sample, SegmentationDataset, Vocabulary
from benchmark.errors import DataError, UserError
from benchmark.registry import Registry, suggest

SPLITS = ("train", "val")
SPLIT_FOLDERS = {"train": "training", "val": "validation"}  # ADE20K / pascal_ctx_d2 folder names
OnError = Literal["raise", "skip"]


def default_data_root() -> Path:
    """The data root when the config sets none: env DETECTRON2_DATASETS (the convention detectron2 users
    already have), else `./datasets`."""
    return Path(os.environ.get("DETECTRON2_DATASETS") or "datasets")


def vocabulary_field(vocabulary: str, field: str) -> list:
    """Per-class values of a vocabulary-file field that `ClassInfo` does not carry (`ade_raw_id`,
    `coco_id`), in class-id order."""
    classes = json.loads((VOCABULARY_DIR / f"{vocabulary}.json").read_text())["classes"]
    return [c[field] for c in classes]


@dataclass(frozen=True)
class DatasetSpec:
    """How one dataset sits under the data root and how to create it when it is missing."""

    name: str  # registry name, e.g. ade20k_847
    vocabulary: str | None  # vocabulary file name under benchmark/data/vocabularies; None: the dataset's own folder has it
    build: Callable[["DatasetSpec", str, Path, Vocabulary | None], SegmentationDataset]
    folder: str  # top folder under the data root (named in the missing-data message)
    how_to_prepare: str  # command or step that creates the folder; `{root}` is filled in


@dataclass(frozen=True)
class PrepareCommand:
    """`python -m benchmark prepare NAME`: converts a dataset release into the layout its `DatasetSpec` reads.
    Every command takes `--root ROOT` (the data root it writes into, default the configured one), `--workers` and
    `--overwrite`; commands that read a raw release from elsewhere also take `--src RAW`."""

    name: str  # subcommand name, e.g. ade20k_full
    help: str  # one line for `prepare --help`
    add_arguments: Callable[[argparse.ArgumentParser], None]  # the command's own arguments
    run: Callable[[argparse.Namespace], int]  # returns the exit code


DATASETS: Registry[DatasetSpec] = Registry("dataset")
PREPARE_COMMANDS: Registry[PrepareCommand] = Registry("prepare command")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    DATASETS.register(spec.name, spec)
    return spec


def register_prepare(command: PrepareCommand) -> PrepareCommand:
    PREPARE_COMMANDS.register(command.name, command)
    return command


class _DeprecatedDst(argparse.Action):
    """`--dst ROOT`, the old spelling of `--root` for the commands with `--src`: still read, with one line saying so."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        import sys

        print(f"warning: prepare {option_string} is deprecated, use --root {values} (the data root to write into)",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_root_argument(parser: argparse.ArgumentParser) -> None:
    """`--root`: the data root every `prepare` command writes into (and `--dst`, its deprecated spelling)."""
    parser.add_argument("--root", type=Path, default=None,
                        help="data root to write into (default: $DETECTRON2_DATASETS or ./datasets)")
    parser.add_argument("--dst", type=Path, dest="root", action=_DeprecatedDst, help=argparse.SUPPRESS)


def semseg_layout(image_dir: str, label_dir: str, label_ext: str, label_ignore: int = IGNORE_LABEL) -> Callable:
    """A builder for a `SemSegFolder` layout; `{folder}` in the templates is training / validation."""

    def build(spec: DatasetSpec, split: str, root: Path, vocabulary: Vocabulary) -> SegmentationDataset:
        images = root / image_dir.format(folder=SPLIT_FOLDERS[split])
        labels = root / label_dir.format(folder=SPLIT_FOLDERS[split])
        require_paths(spec, split, root, images, labels)
        return SemSegFolder(
            spec.name, split, images, labels, vocabulary, label_ext=label_ext, label_ignore=label_ignore
        )

    return build


def panoptic_layout(
    image_dir: str,
    panoptic_json: str,
    panoptic_dir: str,
    semantic_dir: str | None,
    category_ids: Callable[[], list[int]],
) -> Callable:
    """A builder for a COCO-panoptic layout; `{split}` is train / val, `{folder}` training / validation."""

    def build(spec: DatasetSpec, split: str, root: Path, vocabulary: Vocabulary) -> SegmentationDataset:
        names = {"split": split, "folder": SPLIT_FOLDERS[split]}
        images, pan_json, pan_dir = (root / t.format(**names) for t in (image_dir, panoptic_json, panoptic_dir))
        require_paths(spec, split, root, images, pan_json, pan_dir)
        semantic = root / semantic_dir.format(**names) if semantic_dir else None
        return CocoPanopticFolder(
            spec.name,
            split,
            images,
            pan_json,
            pan_dir,
            vocabulary,
            category_ids(),
            semantic_dir=semantic if semantic is not None and semantic.is_dir() else None,
        )

    return build


def require_paths(spec: DatasetSpec, split: str, root: Path, *paths: Path) -> None:
    for path in paths:
        if not path.exists():
            raise DataError(
                f"dataset {spec.name} ({split}) not found: expected {path}; set data.root= or "
                f"DETECTRON2_DATASETS to the folder that holds {spec.folder}/, or create it with: "
                + spec.how_to_prepare.format(root=root)
            )


def list_datasets(filter: str | None = None) -> list[str]:
    return DATASETS.names(filter)


def build_dataset(name: str, split: str, root: Path | str, on_error: OnError = "raise") -> SegmentationDataset:
    """One split ("train" or "val") of a registered dataset under data root `root`. `on_error="skip"` wraps
    it in a `SkippingDataset` that counts unreadable files instead of stopping the run."""
    spec = DATASETS.get(name)
    if split not in SPLITS:
        raise UserError(f"unknown split '{split}' for dataset {name}{suggest(split, SPLITS)}; use one of {SPLITS}")
    if on_error not in ("raise", "skip"):
        raise UserError(f"data.on_error={on_error!r} is not one of 'raise', 'skip'")
    vocabulary = Vocabulary.load(spec.vocabulary) if spec.vocabulary is not None else None
    return with_error_policy(spec.build(spec, split, Path(root), vocabulary), on_error)


def with_error_policy(dataset: SegmentationDataset, on_error: OnError) -> SegmentationDataset:
    """`data.on_error`: "raise" refuses a split that lists a file missing on disk (one line naming it), before
    anything runs; "skip" wraps the split in a `SkippingDataset` that leaves such images (and unreadable ones)
    out and records them."""
    if on_error == "skip":
        return SkippingDataset(dataset)
    missing = dataset.missing_files()
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"{next(iter(missing.values()))}{more}: listed in the {dataset.name} {dataset.split} split "
                        "but missing on disk; restore it, or run with data.on_error=skip (the skipped images are "
                        "recorded in the run's manifest)")
    return dataset


def json_digest(value) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]


class SkippingDataset(SegmentationDataset):
    """`data.on_error=skip`: a DataError while reading image i is recorded in `skipped` (image id -> reason)
    instead of raised; `load(i)` then returns None and `classes_present(i)` an empty array, so stream builders
    leave the image out and loops do `if sample is None: continue`. Use `samples()` to iterate good ones."""

    def __init__(self, dataset: SegmentationDataset) -> None:
        self.dataset = dataset
        self.name, self.split, self.vocabulary = dataset.name, dataset.split, dataset.vocabulary
        self.panoptic = dataset.panoptic
        self.missing = dataset.missing_files()  # left out of streams too: their classes count as none
        self.skipped: dict[str, str] = {image_id: f"missing on disk: {path}" for image_id, path in self.missing.items()}

    def content_digest(self) -> str | None:
        return self.dataset.content_digest()

    def label_stamp(self) -> str | None:
        stamp = self.dataset.label_stamp()
        return None if stamp is None else f"{stamp}:{json_digest(sorted(self.missing))}"

    def __len__(self) -> int:
        return len(self.dataset)

    def image_id(self, index: int) -> str:
        return self.dataset.image_id(index)

    def load(self, index: int) -> Sample | None:  # type: ignore[override]
        try:
            return self.dataset.load(index)
        except DataError as exc:
            self.skipped[self.image_id(index)] = str(exc)
            return None

    def classes_present(self, index: int) -> np.ndarray:
        if self.image_id(index) in self.missing:
            return np.zeros(0, dtype=np.int64)
        try:
            return self.dataset.classes_present(index)
        except DataError as exc:
            self.skipped[self.image_id(index)] = str(exc)
            return np.zeros(0, dtype=np.int64)

    def samples(self, indices: list[int] | None = None):
        """Readable samples of `indices` (all by default), in order; failures land in `skipped`."""
        for index in range(len(self)) if indices is None else indices:
            sample = self.load(index)
            if sample is not None:
                yield sample

    def summary(self) -> str:
        """One line for the run log: how many files were skipped and the first reason."""
        if not self.skipped:
            return f"{self.name} {self.split}: no unreadable files"
        first = next(iter(self.skipped.values()))
        return f"{self.name} {self.split}: skipped {len(self.skipped)} unreadable image(s) (first: {first})"
