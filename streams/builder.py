"""Turn a declarative stream config (configs/stream/*.yaml) into a concrete, hashed stream.

A stream fixes: the class order (seeded permutation, frequency order, the dataset's order or a published order),
the classes of each step C_t, and the training images of each step (overlap: every image with a pixel of C_t;
disjoint: additionally no pixel of a future class; partition: each image in exactly one of the steps whose
classes it holds; or the lists of `stream.train_lists`). Per-image class lists are read once per dataset split
and cached outside the data root (`cache_dir_for`); the stream's content hash (dataset, panoptic flag, class order, per-step
image lists) goes into every run's manifest, so results of different streams or stream versions are never mixed.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.data.types import SegmentationDataset, Vocabulary
from benchmark.errors import UserError
from benchmark.protocol import background_class


@dataclass
class Stream:
    name: str
    version: int
    dataset: str
    vocabulary: Vocabulary
    class_order: list[int]
    step_classes: list[list[int]]  # C_0 .. C_T
    train_indices: list[list[int]]  # training images of each step (indices into the training split)
    train_image_ids: list[list[str]]
    panoptic: bool
    source: str | None = None  # digest of the dataset's files (a folder dataset's `content_digest`), None otherwise

    @property
    def num_steps(self) -> int:
        return len(self.step_classes)

    def seen_classes(self, step: int) -> list[int]:
        return sorted(c for classes in self.step_classes[: step + 1] for c in classes)

    def step_hashes(self) -> list[str]:
        return [_sha(json.dumps(ids)) for ids in self.train_image_ids]

    @property
    def hash(self) -> str:
        """Content hash: dataset, panoptic or semantic evaluation, vocabulary, class order, per-step classes
        and image lists (two streams over one vocabulary and image set, e.g. demo and demo_panoptic, differ), and
        for a folder dataset the digest of its class file and file list (`source`)."""
        payload = {
            "dataset": self.dataset, "panoptic": self.panoptic,
            "vocabulary": self.vocabulary.name, "classes": self.step_classes,
            "images": self.step_hashes(), "version": self.version,
        }
        if self.source is not None:  # a folder dataset: its class file and file list (shipped streams' hashes unchanged)
            payload["source"] = self.source
        return _sha(json.dumps(payload, sort_keys=True))[:16]

    def describe(self) -> dict:
        return {
            "name": self.name, "version": self.version, "hash": self.hash, "dataset": self.dataset,
            "vocabulary": self.vocabulary.name, "num_steps": self.num_steps, "panoptic": self.panoptic,
            "steps": [
                {"step": t, "num_classes": len(c), "classes": [self.vocabulary.classes[i].name for i in c],
                 "class_ids": c, "num_train_images": len(ids), "images_hash": h}
                for t, (c, ids, h) in enumerate(zip(self.step_classes, self.train_image_ids, self.step_hashes()))
            ],
        }


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def step_sizes(cfg, num_classes: int) -> list[int]:
    if cfg.get("steps"):
        if cfg.step_sizes or (cfg.num_steps and cfg.num_steps != len(cfg.steps)):
            raise UserError(f"stream '{cfg.name}': stream.steps gives the steps; leave out stream.step_sizes and "
                            f"stream.num_steps (or set num_steps={len(cfg.steps)})")
        sizes = [len(step) for step in cfg.steps]
    elif cfg.step_sizes:
        sizes = list(cfg.step_sizes)
    elif cfg.num_steps:
        base, extra = divmod(num_classes, cfg.num_steps)
        sizes = [base + (1 if t < extra else 0) for t in range(cfg.num_steps)]
    else:
        raise UserError(f"stream '{cfg.name}' sets none of num_steps, step_sizes, steps (e.g. stream.num_steps=2)")
    if sum(sizes) != num_classes or min(sizes) <= 0:
        raise UserError(f"stream '{cfg.name}': step sizes {sizes} must be positive and sum to {num_classes} classes")
    return sizes


ORDER_PRESETS_DIR = Path(__file__).parent / "orders"


def order_presets() -> list[str]:
    """Names of the published class orders in streams/orders/ (`stream.order=NAME`)."""
    return sorted(p.stem for p in ORDER_PRESETS_DIR.glob("*.yaml"))


def read_order_preset(name: str) -> tuple[dict, list[int]]:
    """streams/orders/NAME.yaml and its `order` as this vocabulary's ids (the source's numbering minus
    `source_id_offset`); one line naming the file when it is not such a file."""
    import yaml

    path = ORDER_PRESETS_DIR / f"{name}.yaml"
    try:
        preset = yaml.safe_load(path.read_text())
        order = [int(c) - int(preset["source_id_offset"]) for c in preset["order"]]
        if not isinstance(preset["vocabulary"], str):
            raise TypeError("vocabulary is not a name")
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: not a class order file (vocabulary, source_id_offset and a list `order` of "
                        f"class ids): {type(exc).__name__} {reason}") from None
    return preset, order


def load_order_preset(name: str, vocabulary: Vocabulary) -> list[int]:
    """A published class order (streams/orders/NAME.yaml: `order` in the source's class numbering, `source_id_offset`
    subtracted to get this vocabulary's ids), checked to list every class of `vocabulary` once."""
    preset, order = read_order_preset(name)
    if preset["vocabulary"] != vocabulary.name:
        raise UserError(f"stream.order={name} is a class order of {preset['vocabulary']}, not of {vocabulary.name}")
    if sorted(order) != vocabulary.ids:
        raise UserError(f"{ORDER_PRESETS_DIR / name}.yaml does not list each of the {len(vocabulary)} classes once")
    return order


def warn_unpublished_order(cfg) -> None:
    """`stream.order=NAME` whose preset lists the settings its source published (`published`: step sizes, semantic
    or panoptic) warns when the stream's setting is none of them: the order is the source's, that split is not."""
    import warnings

    if cfg.order not in order_presets():
        return
    preset, order = read_order_preset(cfg.order)
    published = preset.get("published")
    try:
        setting = {"step_sizes": step_sizes(cfg, len(order)), "panoptic": bool(cfg.panoptic)}
    except UserError:  # another vocabulary's order: load_order_preset says so when the stream is built
        return
    if published and setting not in published:
        kind = "panoptic" if cfg.panoptic else "semantic"
        known = "; ".join(f"{'-'.join(map(str, p['step_sizes']))} {'panoptic' if p['panoptic'] else 'semantic'}"
                          for p in published)
        warnings.warn(f"stream.order={cfg.order} on stream '{cfg.name}' ({kind}, step sizes {setting['step_sizes']}): "
                      f"a setting its source never published ({preset['source']} published {known}); the class "
                      "order is the source's, this split is not", stacklevel=2)


def class_order(cfg, vocabulary: Vocabulary, frequency: list[float] | None = None) -> list[int]:
    ids = vocabulary.ids
    if cfg.order == "natural":
        return ids
    if cfg.order in order_presets():
        return load_order_preset(cfg.order, vocabulary)
    if cfg.order == "frequency":
        if frequency is None:
            raise UserError(f"stream '{cfg.name}': order=frequency needs per-class frequencies")
        return [ids[i] for i in np.argsort(-np.asarray(frequency), kind="stable")]
    return [int(i) for i in np.random.default_rng(cfg.order_seed).permutation(ids)]


def classes_per_image(dataset: SegmentationDataset, cache_dir: Path | None, progress=None) -> list[list[int]]:
    """Class ids present in each image of the split, cached as JSON (per dataset, split and size), reused only
    for the same image ids and label files (`dataset.label_stamp()`: a regenerated or re-prepared dataset is
    indexed again) and when its checksum matches (a damaged file is rebuilt, with a warning)."""
    image_ids = [dataset.image_id(i) for i in range(len(dataset))]
    stamp = dataset.label_stamp()
    cache = None
    if cache_dir is not None and stamp is not None:
        cache = Path(cache_dir) / f"classes_{dataset.name}_{dataset.split}_{len(dataset)}.json"
        cached = _read_class_lists(cache)
        if cached is not None and cached["image_ids"] == image_ids and cached["label_stamp"] == stamp:
            return cached["classes"]
    indices = range(len(dataset))
    if progress is not None:
        indices = progress(indices, desc=f"index {dataset.name}/{dataset.split}")
    classes = [[int(c) for c in dataset.classes_present(i)] for i in indices]
    if cache is not None:
        from benchmark.io import atomic_write_text

        content = {"image_ids": image_ids, "label_stamp": stamp, "classes": classes}
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache, json.dumps({**content, "checksum": _sha(json.dumps(content, sort_keys=True))}))
    return classes


def _read_class_lists(path: Path) -> dict | None:
    """A cached class-list file whose checksum matches, else None (missing; damaged or foreign: warned)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        checksum = data.pop("checksum")
        if checksum == _sha(json.dumps(data, sort_keys=True)):
            return data
        reason = "checksum mismatch"
    except (ValueError, KeyError, AttributeError, TypeError) as exc:  # not JSON, or not a dict with a checksum
        reason = f"unreadable ({type(exc).__name__})"
    warnings.warn(f"class-list cache {path}: {reason}; indexing the split again", stacklevel=3)
    return None


FROZEN_DIR = Path(__file__).parent / "frozen"


def vocabulary_hash(vocabulary: Vocabulary) -> str:
    return _sha(json.dumps([[c.id, c.name] for c in vocabulary.classes]))[:16]


def frozen_definition(cfg, vocabulary: Vocabulary) -> dict | None:
    """The committed class split of a shipped stream (streams/frozen/<name>.json), when it applies to this
    config: same version, vocabulary, order and order seed. Freezing keeps published streams identical even
    if a library changes how a seeded permutation is drawn."""
    path = FROZEN_DIR / f"{cfg.name}.json"
    if not path.is_file():
        return None
    try:
        frozen = json.loads(path.read_text())
        key = (frozen["version"], frozen["vocabulary_hash"], frozen["order"], frozen["order_seed"], frozen["step_sizes"])
    except (ValueError, KeyError, TypeError) as exc:  # empty, truncated, or a field missing
        reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
        raise UserError(f"{path}: not a frozen stream ({reason}); write it again with "
                        f"`python -m benchmark streams freeze {cfg.name}`") from None
    if key != (cfg.version, vocabulary_hash(vocabulary), cfg.order, cfg.order_seed, step_sizes(cfg, len(vocabulary))):
        return None
    _check_frozen_split(path, frozen, vocabulary)
    return frozen


def _check_frozen_split(path: Path, frozen: dict, vocabulary: Vocabulary) -> None:
    """The frozen class order and steps: every class of `vocabulary` exactly once, steps of the frozen sizes."""
    ids = set(vocabulary.ids)
    steps = frozen.get("step_classes")
    if not isinstance(steps, list) or not all(isinstance(step, list) for step in steps):
        raise UserError(f"{path}: step_classes must be a list of lists of class ids")
    seen: dict[int, int] = {}
    for t, step in enumerate(steps):
        for c in step:
            if c not in ids:
                raise UserError(f"{path}: step {t} names class {c}, which {vocabulary.name} does not have")
            if c in seen:
                raise UserError(f"{path}: class {c} is in step {seen[c]} and in step {t}")
            seen[c] = t
    if len(seen) != len(ids) or [len(step) for step in steps] != frozen["step_sizes"]:
        raise UserError(f"{path}: step_classes hold {len(seen)} of the {len(ids)} classes in steps of "
                        f"{[len(step) for step in steps]}, not the frozen step_sizes {frozen['step_sizes']}")
    if sorted(frozen.get("class_order") or []) != sorted(ids):
        raise UserError(f"{path}: class_order does not list each of the {len(ids)} classes once")


def explicit_steps(cfg, vocabulary: Vocabulary) -> list[list[int]]:
    """`stream.steps=[[...], ...]`: the classes of each step, checked to name every class of `vocabulary` once."""
    seen: dict[int, int] = {}
    for t, step in enumerate(cfg.steps):
        for c in step:
            if c not in vocabulary.ids:
                raise UserError(f"stream.steps: step {t} names class {c}, which {vocabulary.name} does not have "
                                f"(ids 0..{len(vocabulary) - 1})")
            if c in seen:
                raise UserError(f"stream.steps: class {c} is in step {seen[c]} and in step {t}")
            seen[c] = t
    missing = [c for c in vocabulary.ids if c not in seen]
    if missing:
        raise UserError(f"stream.steps: class {missing[0]} ({vocabulary.classes[missing[0]].name}) is in no step; "
                        f"list each of the {len(vocabulary)} classes once")
    return [[int(c) for c in step] for step in cfg.steps]


def split_classes(cfg, vocabulary: Vocabulary, per_image: list[list[int]]) -> tuple[list[int], list[list[int]]]:
    """Class order and the classes of each step (C_0 .. C_T)."""
    if cfg.get("steps"):
        steps = explicit_steps(cfg, vocabulary)
        return [c for step in steps for c in step], [sorted(step) for step in steps]
    frozen = frozen_definition(cfg, vocabulary)
    if frozen is not None:
        return frozen["class_order"], frozen["step_classes"]
    frequency = None
    if cfg.order == "frequency":
        frequency = np.zeros(len(vocabulary))
        for classes in per_image:
            frequency[classes] += 1
    order = class_order(cfg, vocabulary, frequency)
    sizes = step_sizes(cfg, len(vocabulary))
    bounds = np.cumsum([0] + sizes)
    return order, [sorted(order[bounds[t]: bounds[t + 1]]) for t in range(len(sizes))]


def freeze(cfg, vocabulary: Vocabulary, per_image: list[list[int]] | None = None) -> dict:
    """The frozen definition of a stream config (written to streams/frozen/ by `streams freeze`)."""
    order, step_classes = split_classes(cfg, vocabulary, per_image or [])
    return {"name": cfg.name, "version": cfg.version, "vocabulary": vocabulary.name,
            "vocabulary_hash": vocabulary_hash(vocabulary), "order": cfg.order, "order_seed": cfg.order_seed,
            "step_sizes": step_sizes(cfg, len(vocabulary)), "class_order": order, "step_classes": step_classes}


def partition_step(seed: int, image_id: str, steps: np.ndarray) -> int:
    """`stream.mode=partition`: the one step (among `steps`, those whose classes the image holds) an image
    trains in, drawn uniformly from a hash of (stream seed, image id): independent of the other images and of
    the dataset's order, identical on every machine and library version."""
    digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    return int(steps[int.from_bytes(digest[:8], "little") % len(steps)])


def assign_images(cfg, train: SegmentationDataset, per_image: list[list[int]], step_classes: list[list[int]],
                  background: int | None = None) -> list[list[int]]:
    """Training images of each step by `stream.mode`: overlap (every image with a pixel of C_t), disjoint (and
    none of a future class) or partition (exactly one step per image: `partition_step`, seeded by order_seed).
    The vocabulary's `background` class (VOC's 0) selects no image, as in MiB / PLOP dataset/utils.py:23-24
    (`labels.remove(0)`): an image of background alone trains in no step."""
    step_of_class = np.empty(sum(len(c) for c in step_classes), dtype=np.int64)
    for t, classes in enumerate(step_classes):
        step_of_class[classes] = t
    train_indices: list[list[int]] = [[] for _ in step_classes]
    for index, classes in enumerate(per_image):
        classes = [c for c in classes if c != background]
        steps = np.unique(step_of_class[classes]) if classes else np.array([], dtype=np.int64)
        if cfg.mode == "partition":
            if len(steps):
                train_indices[partition_step(cfg.order_seed, train.image_id(index), steps)].append(index)
            continue
        for t in steps:
            if cfg.mode == "disjoint" and steps.max() > t:
                continue  # holds a pixel of a future class
            train_indices[int(t)].append(index)
    return train_indices


def build_stream(cfg, train: SegmentationDataset, cache_dir: Path | None = None, progress=None) -> Stream:
    vocabulary = train.vocabulary
    per_image = classes_per_image(train, cache_dir, progress)
    order, step_classes = split_classes(cfg, vocabulary, per_image)
    if cfg.train_lists:  # the per-step image lists are given (e.g. MiB's split files): they replace stream.mode
        from streams.train_lists import read_train_lists

        train_indices = read_train_lists(cfg.train_lists, len(step_classes), train)
    else:
        train_indices = assign_images(cfg, train, per_image, step_classes, background_class(vocabulary))
    if cfg.max_train_images_per_step:
        train_indices = [ids[: cfg.max_train_images_per_step] for ids in train_indices]
    for t, ids in enumerate(train_indices):
        if not ids:
            raise UserError(
                f"stream '{cfg.name}': step {t} has no training image holding its classes "
                f"({', '.join(vocabulary.classes[c].name for c in step_classes[t][:5])}...); "
                "change stream.order_seed, stream.mode or the step sizes"
            )
    return Stream(
        name=cfg.name, version=cfg.version, dataset=cfg.dataset, vocabulary=vocabulary, class_order=order,
        step_classes=step_classes, train_indices=train_indices,
        train_image_ids=[[train.image_id(i) for i in ids] for ids in train_indices], panoptic=cfg.panoptic,
        source=train.content_digest(),
    )


def open_dataset(name: str, split: str, root: Path, demo_seed: int = 0, on_error: str = "raise",
                 demo_scale: int = 1) -> SegmentationDataset:
    """Split "train" or "val". The demo dataset is generated on first use; real datasets are read from the
    data root (benchmark.data.datasets)."""
    from benchmark.data.catalog import with_error_policy
    from benchmark.data.datasets import build_dataset

    if name in ("demo", "demo_panoptic"):
        from benchmark.data.demo import demo_dataset

        dataset = demo_dataset(root, {"train": "training", "val": "validation"}[split], panoptic=name == "demo_panoptic",
                               seed=demo_seed, scale=demo_scale)
        return with_error_policy(dataset, on_error)
    return build_dataset(name, split, root, on_error=on_error)


def cache_dir_for(root: Path) -> Path:
    """Where the per-image class lists of the datasets under `root` are cached: $XDG_CACHE_HOME/covseg-bench/
    streams/<digest of the resolved root> (one folder per data root, none of it under the root itself)."""
    from benchmark.io import cache_home

    return cache_home() / "streams" / hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
