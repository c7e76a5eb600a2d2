"""Which run folder a run continues: `resume=RUN_DIR` is checked to be an unfinished run of the same
configuration and stream version (`check_resumable`), `resume=auto` picks the latest such run
(`find_resumable`). Passed over: runs that another live process of this host is writing, and runs marked
`unresumable` (their checkpoint could not be read: `RunWriter.mark_unresumable`), so that a broken folder is reported
once, not tried again on every start."""
from __future__ import annotations

import os
import socket
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from benchmark.errors import UserError
from benchmark.run.manifest import MANIFEST_FILE, Manifest
from benchmark.run.state import process_gone

# keys that may differ between an interrupted run and its resumption
RESUME_FREE_KEYS = ("run_id", "resume", "quiet", "debug", "results_dir", "device", "threads", "name", "tags",
                    "isolate_timeout_s")


def config_differences(old: DictConfig, new: DictConfig) -> list[str]:
    """Dotted keys whose values differ (ignoring RESUME_FREE_KEYS). A key the schema gained after `old` was
    written (e.g. checkpoint.keep) counts as its default there: the run went as that default goes."""
    def flatten(node, prefix=""):
        out = {}
        for key, value in node.items():
            if not prefix and key in RESUME_FREE_KEYS:
                continue
            if isinstance(value, dict):
                out.update(flatten(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    from benchmark.config import RunConfig

    defaults = flatten(OmegaConf.to_container(OmegaConf.structured(RunConfig)))
    a = flatten(OmegaConf.to_container(old, resolve=True))
    a = {**{key: value for key, value in defaults.items() if key not in a}, **a}
    b = flatten(OmegaConf.to_container(new, resolve=True))
    return sorted(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in set(a) | set(b) if a.get(k) != b.get(k))


def _running_elsewhere(manifest: Manifest) -> bool:
    """Another live process of this host is writing the run folder now."""
    process = manifest.process or {}
    return (manifest.status == "running" and process.get("host") == socket.gethostname()
            and process.get("pid") != os.getpid() and not process_gone(process))


def check_resumable(run_dir: Path, cfg: DictConfig, stream) -> Manifest:
    """The manifest of an unfinished run folder that `cfg` may continue: same configuration and stream version,
    not marked unresumable, and no live process of this host writing it. UserError saying why not."""
    manifest_path = Path(run_dir) / MANIFEST_FILE
    if not manifest_path.is_file():
        raise UserError(f"resume={run_dir}: not a run folder (no manifest.json)")
    try:
        manifest = Manifest.read(manifest_path)
    except ValueError as exc:
        raise UserError(f"resume={run_dir}: its manifest.json cannot be read ({exc}); start a new run") from None
    if manifest.status == "complete":
        raise UserError(f"resume={run_dir}: this run is already complete (see its summary.json)")
    if manifest.unresumable:
        raise UserError(f"resume={run_dir}: {manifest.unresumable}; start a new run (without resume=)")
    differing = config_differences(OmegaConf.load(Path(run_dir) / "config.yaml"), cfg)
    if differing:
        raise UserError(f"resume={run_dir}: that run has another config ({', '.join(differing[:4])}); "
                        "resume with the same overrides or start a new run")
    if manifest.stream_hash != stream.hash:
        raise UserError(f"resume={run_dir}: the stream changed since that run (hash {manifest.stream_hash} "
                        f"vs {stream.hash}); start a new run")
    if _running_elsewhere(manifest):
        raise UserError(f"resume={run_dir}: that run is still going (process {manifest.process['pid']} on this "
                        "host); wait for it or stop it first")
    return manifest


def find_resumable(cfg: DictConfig, stream) -> Path | None:
    """resume=auto: the most recently started unfinished run of the same config and stream version, passing
    over runs marked unresumable and runs whose process is still going on this host."""
    candidates = []
    for manifest_path in (Path(cfg.results_dir) / stream.name / cfg.method.name).glob(f"*/{MANIFEST_FILE}"):
        try:
            manifest = Manifest.read(manifest_path)
            same = not config_differences(OmegaConf.load(manifest_path.parent / "config.yaml"), cfg)
        except (OSError, ValueError):
            continue
        if (manifest.status != "complete" and manifest.stream_hash == stream.hash and same
                and not manifest.unresumable and not _running_elsewhere(manifest)):
            candidates.append((manifest.started or "", manifest_path.parent))
    return max(candidates)[1] if candidates else None

