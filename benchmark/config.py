"""Typed configuration: the schema behind the YAML files in configs/, and the loader behind the CLI.

`configs/config.yaml` composes the groups method/, stream/, model/, data/, logger/ with Hydra; overrides are
`group=option` and dotted `key=value` (`method.k=16`, `stream.order_seed=3`). The result is checked against
the dataclasses below (unknown keys and wrong types are refused, with the closest key suggested); a method's
own parameters are checked against its `Config` dataclass.
"""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmark.errors import UserError
from benchmark.plugins import load_methods, plugin_config_folders
from benchmark.registry import suggest


def _shipped_config_dir() -> Path:
    """configs/ of this checkout, or in an installed wheel the copy that setup.py ships as benchmark/configs."""
    package = Path(__file__).resolve().parent
    return package / "configs" if (package / "configs").is_dir() else package.parent / "configs"


CONFIG_DIR = _shipped_config_dir()
GROUPS = ("method", "stream", "protocol", "model", "data", "logger")


def config_search_path() -> list[Path]:
    """Where config groups are looked up, first match wins: the project's configs/, then the `configs/` folder
    of every $COVSEG_PATH folder and beside every `covseg_bench.plugins` entry point's module (found without
    importing it): Hydra's `hydra.searchpath`, filled from the plugins."""
    folders = [CONFIG_DIR, *plugin_config_folders()]
    return [folder for folder in dict.fromkeys(folders) if folder.is_dir()]


def config_file(group: str, name: str) -> Path | None:
    """configs/<group>/<name>.yaml from the first folder of the search path holding it."""
    return next((folder / group / f"{name}.yaml" for folder in config_search_path()
                 if (folder / group / f"{name}.yaml").is_file()), None)


def search_path_override() -> list[str]:
    """The `hydra.searchpath=[...]` override that adds the plugins' config folders ([] when there are none)."""
    extra = config_search_path()[1:]
    return [f"hydra.searchpath=[{','.join('file://' + str(f) for f in extra)}]"] if extra else []


@dataclass
class StreamConfig:
    name: str = "???"  # stream name (file name in configs/stream/)
    dataset: str = "???"  # dataset the stream splits (demo, demo_panoptic, ade20k_847, ...)
    num_steps: Optional[int] = None  # equal steps over the whole vocabulary, or ...
    step_sizes: Optional[list[int]] = None  # ... explicit sizes (classic "100-10" splits: [100, 10, 10, 10, 10, 10])
    order: str = "random"  # random (seeded by order_seed) | frequency | natural | published: streams/orders/NAME.yaml
    order_seed: int = 0  # seed of the random class order (draw other orders to average over)
    mode: str = "overlap"  # overlap: images with a pixel of C_t | disjoint: none of later C | partition: 1 step/image
    train_lists: Optional[str] = None  # folder of train-<t>.txt (image ids) / .npy (MiB's indices); replaces mode
    steps: Optional[list[list[int]]] = None  # explicit classes of each step (every class once); replaces order / sizes
    path: Optional[str] = None  # the dataset's folder, replacing data.root (stream=folder: the folder with classes.yaml)
    panoptic: bool = False  # evaluate PQ as well as mIoU
    max_train_images_per_step: Optional[int] = None  # cap per step (first images in the frozen list)
    version: int = 1  # bump when the definition changes; recorded in results so versions never mix


@dataclass
class ModelConfig:
    name: str = "???"  # model config name (file name in configs/model/)
    kind: str = "open_clip"  # a registered model kind: open_clip (frozen CLIP segmenter) | cached (exported predictions)
    arch: str = "covseg-tiny-vit"  # open_clip architecture (the project's own configs included)
    pretrained: Optional[str] = None  # open_clip pretrained tag (e.g. openai); None = random weights (seeded)
    input_size: int = 224  # images are resized to input_size x input_size for the ViT
    proposals: str = "superpixel"  # superpixel (SLIC) | oracle (ground-truth segments, analysis only)
    superpixel_segments: int = 150  # SLIC n_segments
    superpixel_compactness: float = 30.0  # SLIC compactness (higher: more regular superpixels)
    templates: str = "single"  # prompt template set: single | ensemble
    batch_size: int = 8  # images per forward pass
    cache_dir: Optional[str] = None  # disk cache of per-image features; None = $XDG_CACHE_HOME/covseg-bench/features, off = none
    cache_memory_mb: float = 1024.0  # in-memory per-image caches (validation / training images, each): MB, LRU evicted
    feature_dtype: str = "float16"  # storage of cached embeddings and dense features (computed in float32): float16 | float32
    predictions_dir: Optional[str] = None  # kind=cached: folder of exported predictions (benchmark/models/cached/format.py)


@dataclass
class DataConfig:
    name: str = "default"
    root: Optional[str] = None  # data root; None = $DETECTRON2_DATASETS or ./datasets (demo: the cache folder)
    demo_seed: int = 0  # seed of the synthetic demo dataset
    demo_secret: Optional[int] = None  # the demo's secret: None = the data root's own (drawn at first use); 0 = the public draw
    demo_scale: int = 1  # the demo dataset at N x its default size (300·N train / 100·N val images)
    on_error: str = "raise"  # raise | skip: unreadable samples are counted and reported instead


@dataclass
class LoggerConfig:
    name: str = "none"  # none | wandb
    project: str = "covseg-bench"  # wandb project
    entity: Optional[str] = None  # wandb entity
    mode: Optional[str] = None  # wandb mode (online | offline); None = wandb's default / WANDB_MODE
    init_timeout: float = 60.0  # seconds wandb may take to start before the run goes on without it


@dataclass
class ProtocolConfig:
    """A CSS paper's protocol around the stream (benchmark/protocol.py; presets in configs/protocol/)."""

    name: str = "covseg"  # preset name, recorded in the manifest and shown on the leaderboard
    train_labels: str = "ignore"  # pixels of classes other than C_t in training samples: ignore | background
    train_void: str = "ignore"  # void pixels in training samples: ignore | background | background_if_no_class
    eval_images: str = "all"  # all | with_scored: only validation images with a pixel of a class scored at the step
    eval_unseen: str = "ignore"  # ground truth of classes not scored at the step: ignore | background (a scored row)
    eval_void: str = "ignore"  # void ground truth: ignore | background | background_if_no_class


@dataclass
class EvalConfig:
    vocabulary: str = "seen"  # seen: segment with S_t, ignore unseen classes; all: every class (forward transfer)
    miou_mode: str = "present"  # present (detectron2 >= 2022) | legacy (detectron2 v0.6)
    batch_size: int = 8  # validation images per predict call
    max_images: Optional[int] = None  # evaluate on the first N validation images only (quick looks)
    initial: bool = True  # evaluate the untouched method with every class before step 0 (row -1 of R)


@dataclass
class CheckpointConfig:
    keep: str = "last"  # last: checkpoint.pt, replaced after every step | all: checkpoints/step_NNN/ (show --steps)


@dataclass
class RunConfig:
    method: Any = field(default_factory=dict)  # checked against the method's own Config dataclass
    stream: StreamConfig = field(default_factory=StreamConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    seed: int = 0  # seeds python, numpy and torch; random-weight models are drawn from it
    name: Optional[str] = None  # the run's short label in the leaderboard and results.load; None: derived from the config
    tags: Optional[list[str]] = None  # free labels recorded with the run, e.g. tags=[ablation,k-sweep] (results.load: `tags`)
    results_dir: str = "results"  # run folders go to results_dir/<stream>/<method>/<run-id>/
    run_id: Optional[str] = None  # default: <UTC time>-s<seed>-<random suffix>
    quiet: bool = False  # no progress bars (batch jobs)
    debug: bool = False  # tracebacks of user errors; every frame of a method's error, not only its own
    device: str = "cpu"  # torch device
    resume: Optional[str] = None  # RUN_DIR of an interrupted run, or auto: the latest unfinished run of this config
    threads: Optional[int] = None  # torch CPU threads per process; None: $OMP_NUM_THREADS, else usable cores / local ranks
    isolate: bool = False  # the method (and all plugin code) in a worker process: no labels, no data paths
    sandbox: bool = False  # with isolate=true: Linux Landlock confines the worker's file access
    isolate_timeout_s: float = 1800.0  # isolate=true: seconds the parent waits for each message of the worker


def register_schema() -> None:
    """Give Hydra the typed schema, so every key of the dataclasses can be overridden even when a group's
    YAML leaves it at its default (configs/config.yaml lists `run_schema` first in its defaults)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="run_schema", node=RunConfig)


def group_options(group: str) -> list[str]:
    """The options of a config group: YAML file names over the whole search path."""
    return sorted({p.stem for folder in config_search_path() for p in (folder / group).glob("*.yaml")})


def _isolated(overrides: list[str]) -> bool:
    """isolate=true among the overrides: then no plugin may be imported here, not even to diagnose an error."""
    return any(item.lower() in ("isolate=true", "isolate=yes", "isolate=on", "isolate=1") for item in overrides)


def _check_group_choices(overrides: list[str]) -> None:
    for item in overrides:
        match = re.fullmatch(r"([a-z_]+)=(.*)", item)
        if match and match.group(1) in GROUPS:
            group, option = match.groups()
            options = group_options(group)
            if option not in options and group == "method" and not _isolated(overrides):
                from benchmark.plugin_config import missing_config  # only here: a plugin's method without its YAML

                if missing_config(option):
                    raise UserError(missing_config(option))
            if option not in options:
                raise UserError(
                    f"unknown {group} '{option}'{suggest(option, options)}; available: {', '.join(options)}"
                )


def _key_error(cfg: DictConfig, dotted: str) -> UserError:
    """One line for an unknown key, with the closest existing keys at that level."""
    parts = dotted.split(".")
    node: Any = cfg
    for depth, part in enumerate(parts):
        if isinstance(node, DictConfig) and part in node:
            node = node[part]
            continue
        prefix = "".join(p + "." for p in parts[:depth])
        siblings = [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []
        hint = suggest(part, siblings, prefix)
        # `k=3` for `method.k=3`: the same key inside a section, a better match than a near top-level name
        nested = [f"{section}.{part}" for section, value in cfg.items() if isinstance(value, DictConfig) and part in value]
        if depth == 0 and nested:
            hint = f" (did you mean: {', '.join(nested)}?)"
        return UserError(f"unknown config key '{dotted}'{hint}")
    return UserError(f"invalid config key '{dotted}'")


def load_config(overrides: list[str]) -> DictConfig:
    """Compose configs/config.yaml with `overrides` and validate it; raises UserError with one line."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    _check_group_choices(overrides)
    register_schema()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        try:
            cfg = compose(config_name="config", overrides=[*overrides, *search_path_override()])
        except Exception as exc:  # hydra wraps override errors in several exception types
            message = str(exc)
            key = re.search(r"Could not override '([^']+)'", message) or re.search(r"Key '([^']+)' is not in struct", message)
            if key:
                kept = [o for o in overrides if not o.startswith(key.group(1) + "=")]
                base = compose(config_name="config", overrides=[*kept, *search_path_override()])
                raise _key_error(base, key.group(1)) from None
            in_file = re.search(r"In '(\w+)/([^']+)'.*full_key: (\S+)", message, flags=re.S)
            if in_file:  # a key of a group's YAML file that the schema lacks
                path = config_file(in_file.group(1), in_file.group(2))
                raise UserError(f"{path}: {_key_error(OmegaConf.structured(RunConfig), in_file.group(3))}") from None
            merging = re.search(r"Error merging override ([^=\s]+)=", message)
            if merging:  # a value of the wrong type: hydra keeps omegaconf's reason in the cause
                reason = str(exc.__cause__ or exc).splitlines()[0]
                raise UserError(f"invalid value for {_key_name_dotted(merging.group(1))}: {reason}") from None
            raise UserError(f"invalid override: {message.splitlines()[0]}") from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:  # `???` left in the schema: an empty or incomplete group file
        files = [str(config_file(group, _chosen_option(group, overrides)))
                 for group in GROUPS if any(key.startswith(group + ".") for key in missing)]
        raise UserError(f"{', '.join(files) or 'the configuration'} leaves {', '.join(missing)} unset; set "
                        f"{'them' if len(missing) > 1 else 'it'} there or as an override")
    return validate(cfg)


def _chosen_option(group: str, overrides: list[str]) -> str:
    """The option of `group` that `overrides` choose, else the one of configs/config.yaml's defaults list."""
    chosen = [item.split("=", 1)[1] for item in overrides if item.startswith(group + "=")]
    if chosen:
        return chosen[-1]
    defaults = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "config.yaml")).get("defaults", [])
    return next((item[group] for item in defaults if isinstance(item, dict) and group in item), "")


def validate(cfg: DictConfig) -> DictConfig:
    """Merge into the typed schema (unknown keys, wrong types) and check the method's parameters."""
    from benchmark.method import METHODS

    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    if "hydra" in cfg:
        del cfg["hydra"]
    method = cfg.pop("method", None) or {}
    try:
        typed = OmegaConf.merge(OmegaConf.structured(RunConfig), cfg)
    except OmegaConfBaseException as exc:
        raise _schema_error(exc, OmegaConf.structured(RunConfig)) from None
    name = method.get("name")
    if not name:
        raise UserError("config has no method.name; choose one with method=NAME (see `python -m benchmark list methods`)")
    # the method's plugins only (a built-in method imports none); isolate=true: they are imported by its worker only
    load_methods(name, foreign=not typed.isolate)
    # a plugin's method under isolation: its keys are checked in its worker (benchmark.hosts.worker), not here
    unchecked = typed.isolate and name not in METHODS
    typed.method = OmegaConf.create(dict(method)) if unchecked else check_method_config(name, method)
    _check_choices(typed)
    _check_extras(typed)
    return typed


def check_method_config(name: str, method: DictConfig) -> DictConfig:
    """The method's keys checked against its Config dataclass, defaults filled in (`name` first)."""
    from benchmark.method import METHODS

    method_cls = METHODS.get(name)
    params = {_field_name(k): v for k, v in method.items() if k != "name"}
    try:
        checked = OmegaConf.merge(OmegaConf.structured(method_cls.Config), params)
    except OmegaConfBaseException as exc:
        schema = OmegaConf.create({_key_name(k): v for k, v in OmegaConf.structured(method_cls.Config).items()})
        raise _schema_error(exc, schema, prefix="method.") from None
    OmegaConf.to_object(checked)  # runs the method Config's __post_init__ checks (ranges, choices)
    return OmegaConf.create({"name": name, **{_key_name(k): v for k, v in checked.items()}})


def _check_extras(cfg: DictConfig) -> None:
    """Settings that need an optional dependency (pyproject.toml's extras) say which one to install."""
    import importlib.util

    if cfg.logger.name == "wandb" and importlib.util.find_spec("wandb") is None:
        raise UserError("logger=wandb needs wandb, which is not installed: pip install 'covseg-bench[wandb]'")


def _field_name(key: str) -> str:
    """Config keys that are Python keywords (`lambda`) live in dataclass fields with a trailing underscore."""
    return key + "_" if keyword.iskeyword(key) else key


def _key_name(field_name: str) -> str:
    return field_name[:-1] if field_name.endswith("_") and keyword.iskeyword(field_name[:-1]) else field_name


def _key_name_dotted(dotted: str) -> str:
    return ".".join(_key_name(part) for part in dotted.split("."))


def method_config(cfg: DictConfig) -> Any:
    """The method's typed Config instance from a validated run config."""
    from benchmark.method import METHODS

    method_cls = METHODS.get(cfg.method.name)
    params = {_field_name(k): v for k, v in cfg.method.items() if k != "name"}
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(method_cls.Config), params))


def _schema_error(exc: OmegaConfBaseException, schema: DictConfig, prefix: str = "") -> UserError:
    key = getattr(exc, "full_key", None) or ""
    message = str(exc).splitlines()[0]
    if "not in struct" in message or "Missing key" in message or "Key '" in message:
        return _key_error(OmegaConf.create({prefix.rstrip(".") or "_": schema}) if prefix else schema,
                          (prefix + key) if prefix else key)
    return UserError(f"invalid value for {prefix}{_key_name(str(key))}: {message}")


def _check_choices(cfg: DictConfig) -> None:
    from benchmark.models import MODEL_KINDS
    from benchmark.protocol import CHOICES as PROTOCOL_CHOICES
    from streams.builder import order_presets, warn_unpublished_order

    choices = {
        "stream.order": ("random", "frequency", "natural", *order_presets()),
        "stream.mode": ("overlap", "disjoint", "partition"),
        "model.proposals": ("superpixel", "oracle"),
        "model.feature_dtype": ("float16", "float32"),
        "data.on_error": ("raise", "skip"),
        "eval.vocabulary": ("seen", "all"),
        "eval.miou_mode": ("present", "legacy"),
        "checkpoint.keep": ("last", "all"),
        "logger.name": ("none", "wandb"),
        **PROTOCOL_CHOICES,
    }
    for key, allowed in choices.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            raise UserError(f"{key}={value} is not one of: {', '.join(allowed)}")
    MODEL_KINDS.get(cfg.model.kind)  # an unknown kind: one line with the near matches
    warn_unpublished_order(cfg.stream)
    if cfg.sandbox and not cfg.isolate:
        raise UserError("sandbox=true confines the method's worker process: set isolate=true as well")
    if not cfg.isolate_timeout_s > 0:
        raise UserError(f"isolate_timeout_s must be a positive number of seconds, got {cfg.isolate_timeout_s}")
    if cfg.threads is not None and cfg.threads <= 0:
        raise UserError(f"threads must be positive (or null: automatic), got {cfg.threads}")
    for key in ("stream.num_steps", "eval.max_images"):  # 0 would mean "unset" to a truth test, or no images
        if OmegaConf.select(cfg, key) is not None and OmegaConf.select(cfg, key) <= 0:
            raise UserError(f"{key} must be positive (or null), got {OmegaConf.select(cfg, key)}")
    if not cfg.results_dir.strip():
        raise UserError("results_dir is empty; give the folder that run folders go to (default: results)")
    positive = ("model.input_size", "model.batch_size", "eval.batch_size", "model.superpixel_segments",
                "data.demo_scale", "model.cache_memory_mb")
    for key in positive:
        if OmegaConf.select(cfg, key) <= 0:
            raise UserError(f"{key} must be positive, got {OmegaConf.select(cfg, key)}")


def data_root(cfg: DictConfig) -> Path:
    """stream.path (a folder dataset's folder), else data.root, else (the generated demo datasets) the cache folder, else $DETECTRON2_DATASETS (detectron2's
    convention), else ./datasets."""
    from benchmark.data.datasets import default_data_root
    from benchmark.data.demo import DEMO_DATASETS, demo_cache_root

    if cfg.stream.get("path"):
        return Path(cfg.stream.path).expanduser()
    if cfg.data.root:
        root = Path(cfg.data.root).expanduser()
        if not root.exists() and not root.absolute().parent.is_dir():  # a typo: never generate a demo there
            raise UserError(f"data.root={cfg.data.root}: neither that folder nor its parent "
                            f"{root.absolute().parent} exists; set data.root to an existing folder (or to a new "
                            "folder inside one, for the generated demo)")
        return root
    return demo_cache_root() if cfg.stream.dataset in DEMO_DATASETS else default_data_root()
