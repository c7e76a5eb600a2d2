"""The frozen open-vocabulary segmenter shared by every method, built from configs/model/*.yaml."""
from __future__ import annotations

from pathlib import Path

from benchmark.errors import UserError


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


def build_segmenter(config, seed: int = 0, device: str = "cpu"):
    """The segmenter of `config.kind`, with its disk feature cache in `feature_cache_dir(config)`."""
    check_device(device)
    if config.kind == "open_clip":
        from benchmark.models.segmenter import OpenVocabSegmenter

        return OpenVocabSegmenter(config, seed=seed, device=device, cache_dir=feature_cache_dir(config))
    if config.kind == "cached":
        from benchmark.models.cached import CachedSegmenter

        return CachedSegmenter(config, seed=seed, device=device, cache_dir=feature_cache_dir(config))
    raise UserError(f"model.kind='{config.kind}' is not one of: open_clip, cached")
