"""The frozen open-vocabulary segmenter shared by every method, built from configs/model/*.yaml."""
from __future__ import annotations

from benchmark.errors import UserError


def build_segmenter(config, seed: int = 0, device: str = "cpu"):
    if config.kind == "open_clip":
        from benchmark.models.segmenter import OpenVocabSegmenter

        return OpenVocabSegmenter(config, seed=seed, device=device)
    raise UserError(f"model.kind='{config.kind}' is not one of: open_clip")
