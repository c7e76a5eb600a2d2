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


def build_segmenter(config, seed: int = 0, device: str = "cpu"):
    """The segmenter of `config.kind`, with its disk feature cache in `feature_cache_dir(config)`."""
    if config.kind == "open_clip":
        from benchmark.models.segmenter import OpenVocabSegmenter

        return OpenVocabSegmenter(config, seed=seed, device=device, cache_dir=feature_cache_dir(config))
    if config.kind == "cached":
        from benchmark.models.cached import CachedSegmenter

        return CachedSegmenter(config, seed=seed, device=device, cache_dir=feature_cache_dir(config))
    raise UserError(f"model.kind='{config.kind}' is not one of: open_clip, cached")
