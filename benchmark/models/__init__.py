"""The frozen open-vocabulary segmenter shared by every method, built from configs/model/*.yaml by the builder
registered for its `model.kind` (`MODEL_KINDS`). A new kind is one builder:

    @register_model_kind("mine")
    def build_mine(config, *, seed: int, device: str, cache_dir: Path | None) -> Segmenter: ...

returning an object that implements `benchmark.models.base.Segmenter`. Builders import their model lazily, so
reading the registry (config validation, `list models`) never loads a backbone.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from benchmark.errors import UserError
from benchmark.registry import Registry

if TYPE_CHECKING:
    from benchmark.models.base import Segmenter

SegmenterBuilder = Callable[..., "Segmenter"]  # (config, *, seed, device, cache_dir) -> Segmenter
MODEL_KINDS: Registry[SegmenterBuilder] = Registry("model.kind")


def register_model_kind(name: str) -> Callable[[SegmenterBuilder], SegmenterBuilder]:
    """Decorator: `model.kind=NAME` builds its segmenter with the decorated builder."""
    return MODEL_KINDS.register(name)


@register_model_kind("open_clip")
def build_open_clip(config, *, seed: int, device: str, cache_dir: Path | None) -> Segmenter:
    """The frozen open_clip model with superpixel (or oracle) proposals (benchmark/models/segmenter.py)."""
    from benchmark.models.segmenter import OpenVocabSegmenter

    return OpenVocabSegmenter(config, seed=seed, device=device, cache_dir=cache_dir)


@register_model_kind("cached")
def build_cached(config, *, seed: int, device: str, cache_dir: Path | None) -> Segmenter:
    """Predictions exported by an external model such as FC-CLIP (benchmark/models/cached/)."""
    from benchmark.models.cached.segmenter import CachedSegmenter

    return CachedSegmenter(config, seed=seed, device=device, cache_dir=cache_dir)


def feature_cache_dir(config) -> Path | None:
    """model.cache_dir if set (`off` disables the disk cache), else $XDG_CACHE_HOME/covseg-bench/features
    (~/.cache/covseg-bench/features): outside the data root, so shared read-only dataset folders stay as they are."""
    if config.cache_dir:
        return None if str(config.cache_dir).lower() in ("off", "none", "false") else Path(config.cache_dir).expanduser()
    from benchmark.io import cache_home

    return cache_home() / "features"


def check_device(name: str) -> None:
    """`device=NAME` names a torch device this machine has; else one line saying so (before a run folder exists)."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device={name} is not a torch device (cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device={name}: no CUDA GPU is usable here (torch.cuda.is_available() is false); "
                            "use device=cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"device={name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"device={name}: Apple's MPS backend is not available here; use device=cpu")


def build_segmenter(config, seed: int = 0, device: str = "cpu") -> Segmenter:
    """The segmenter of `config.kind` (an unknown kind: one line with the near matches), with its disk feature
    cache in `feature_cache_dir(config)`; a builder whose result lacks a `Segmenter` member is a TypeError."""
    from benchmark.models.base import missing_members

    check_device(device)
    builder = MODEL_KINDS.get(config.kind)
    segmenter = builder(config, seed=seed, device=device, cache_dir=feature_cache_dir(config))
    missing = missing_members(segmenter)
    if missing:
        raise TypeError(f"model.kind={config.kind}: {type(segmenter).__name__} lacks the Segmenter members "
                        f"{', '.join(missing)} (benchmark/models/base.py)")
    return segmenter
