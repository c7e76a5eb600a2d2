"""Method hosts: where a run's method lives and how it is called. `make_host(cfg, ...)` is the one place that
chooses: `isolate=true` puts the method (and every plugin module) in a worker process (benchmark.hosts.worker,
confined by Landlock with `sandbox=true`); otherwise it lives in this process (benchmark.hosts.in_process).
Both are `MethodHost`s (benchmark.hosts.base), so the runner and `show` call them alike."""
from __future__ import annotations

from omegaconf import DictConfig

from benchmark.hosts.base import MethodHost
from benchmark.hosts.build import build_method
from benchmark.hosts.in_process import InProcessHost


def make_host(cfg: DictConfig, num_classes: int, device: str = "cpu", quiet: bool = True) -> MethodHost:
    """The method of the validated run config `cfg` for a dataset of `num_classes` classes, built on
    `device`; `quiet`: no progress bars from a worker. A worker checks a plugin's method keys itself (this
    process never imports plugin code): `cfg.method` becomes the config it checked."""
    if cfg.isolate:
        from benchmark.hosts.worker.host import WorkerHost

        host = WorkerHost.start(cfg, num_classes, device, quiet)
        cfg.method = host.started["method"]
        return host
    return InProcessHost(build_method(cfg, num_classes, device), cfg.method.name)


__all__ = ["MethodHost", "make_host"]
