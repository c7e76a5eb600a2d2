"""`build_method(cfg, ...)`: the configured method over the configured frozen segmenter; the one place methods
are built (in this process, in a method's worker, and for `show`)."""
from __future__ import annotations

from omegaconf import DictConfig

from benchmark.config import method_config
from benchmark.hosts.failure import call_method
from benchmark.method import METHODS, ContinualMethod
from benchmark.models import build_segmenter


def build_method(cfg: DictConfig, num_classes: int, device: str = "cpu") -> ContinualMethod:
    """`cfg.method` (a checked method config) over the segmenter of `cfg.model`, both seeded with `cfg.seed`,
    for a dataset of `num_classes` classes. Random heads draw from the global RNG: seed it first to build
    the method a run built. An exception of the method's constructor comes out as a MethodError."""
    segmenter = build_segmenter(cfg.model, seed=cfg.seed, device=device)
    method_cls, config = METHODS.get(cfg.method.name), method_config(cfg)
    return call_method(cfg.method.name, "__init__", method_cls, method_cls, config, segmenter, num_classes,
                       seed=cfg.seed)
