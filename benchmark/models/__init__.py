"""The frozen open-vocabulary segmenter shared by every method, built from configs/model/*.yaml."""
from __future__ import annotations

from pathlib import Path

from benchmark.errors import UserError


def feature_cache_dir(config, cache_root: Path | str | None) -> Path | None:
    """model.cache_dir if set (`off` disables the disk cache), else <cache_root>/features, else None."""
    if config.cache_dir:
        return None if str(config.cache_dir).lower() in ("off", "none", "false") else Path(config.cache_dir).expanduser()
    return Path(cache_root) / "features" if cache_root is not None else None


def build_segmenter(config, seed: int = 0, device: str = "cpu", cache_root: Path | str | None = None):
    """The segmenter of `config.kind`; `cache_root` (the run's cache folder) holds the disk feature cache."""
    if config.kind == "open_clip":
        from benchmark.models.segmenter import OpenVocabSegmenter

        return OpenVocabSegmenter(config, seed=seed, device=device, cache_dir=feature_cache_dir(config, cache_root))
    if config.kind == "cached":
        from benchmark.models.cached import CachedSegmenter

        return CachedSegmenter(config, seed=seed, device=device, cache_dir=feature_cache_dir(config, cache_root))
    raise UserError(f"model.kind='{config.kind}' is not one of: open_clip, cached")
