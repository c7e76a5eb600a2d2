"""The frozen models' work counters: images through the backbone(s), prompts through the text encoder, and the
disk feature cache's hits and writes. The manifest's `passes` holds them, from the method's own process."""
from __future__ import annotations

from typing import Any

from benchmark.models.feature_cache import FeatureCache, directory_bytes

CACHE_ATTRIBUTES = ("disk_cache", "dense_disk_cache")  # the FeatureCaches a segmenter or embedder may hold


def encoder_counters(segmenter: Any, embedder: Any = None) -> dict:
    """What `segmenter` (and the method's own `embedder`, if any) computed: backbone images, embedder images
    (DINOv2 embedders only), text prompts, and the per-image features read from / written to the disk cache (a
    run that mostly read them ran warm, hence faster)."""
    disk = getattr(segmenter, "cache_dir", None)
    disk_caches = [cache for owner in (segmenter, embedder) for name in CACHE_ATTRIBUTES
                   if isinstance(cache := getattr(owner, name, None), FeatureCache)]
    return {"disk_cache": str(disk) if disk else None, "disk_cache_bytes": directory_bytes(disk),
            "disk_cache_hits": sum(cache.hits for cache in disk_caches),
            "disk_cache_writes": sum(cache.writes for cache in disk_caches),
            "backbone_images": getattr(segmenter, "backbone_images", None),
            "embedder_images": getattr(embedder, "backbone_images", None),
            "text_prompts": getattr(segmenter, "text_prompts", None)}
