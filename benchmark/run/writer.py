"""The run folder: results/<stream>/<method>/<run-id>/ (results/README.md describes every file)

    config.yaml          resolved configuration
    manifest.json        provenance: git commit and dirty flag, method source digest, package versions, seeds,
                         stream hash, hardware, timings, status, protocol (ground truth access)
                         (benchmark.run.manifest; this writer is its only author)
    stats/step_NNN.npz   raw statistics of step t (confusion matrix, ...): every metric is derived from these
    stats/step_NNN.json  per-step costs: learn / eval seconds, memory bytes, trainable parameters
    class_scores.csv     per step and class: IoU (and PQ, SQ, RQ on panoptic streams), from the raw statistics
    stats/initial.npz    raw statistics of the initial evaluation (before step 0, every class: row -1 of R)
    stats/initial.json   its eval seconds and mIoU over every class
    matrix_<metric>.csv  R[t][j], with the initial row (index "initial") first when there is one
    summary.json         stream metrics (percent), matrices, memory, seconds
    plots/*.png          R heatmaps and the most forgotten classes (benchmark.run.plots)

The writer stores what it is given: the raw statistics and each step's record, then (`finish`) the summary and
plots its caller derived from them (benchmark.evaluation.summary.write_run_results). Every file is written
atomically; `manifest.json` says `"status": "complete"` only once everything is written. The configured tracker
(`logger=`) receives the same numbers as they are written.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import platform
import secrets
import socket
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from benchmark import distributed, provenance
from benchmark.errors import MethodError, UserError
from benchmark.integrations.wandb import RunLogger, build_logger
from benchmark.io import atomic_save_npz, atomic_write_json, atomic_write_text, finite
from benchmark.run.manifest import Manifest
from benchmark.run.resume import check_resumable
from benchmark.run.state import Terminated, process_identity
from benchmark.run.stats import INITIAL_STATS, STATS_DIR, step_stats_file


def failure_reason(exc: BaseException, limit: int = 300) -> str:
    """One line saying why a run stopped: a user error's or a method error's own message, else the exception
    type and message."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if not isinstance(exc, (UserError, MethodError)):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def execution_record(protocol: dict | None, plugins: list[dict] | None, execution: dict | None) -> dict:
    """The manifest fields of how a run is carried out, from the runner's `protocol`, `plugins` and `execution`
    records (None: not recorded) and this process: world size, threads and torch environment (timings depend
    on them)."""
    given = {"protocol": protocol, "plugins": plugins, "execution": execution}
    return {**{name: value for name, value in given.items() if value is not None},
            "world_size": distributed.world_size(), "threads": torch.get_num_threads(),
            "environment": provenance.torch_environment()}


class RunWriter:
    """Writes one run folder; the only author of its manifest (`self.manifest`)."""

    def __init__(self, run_dir: Path, cfg: DictConfig, stream, manifest: Manifest) -> None:
        self.run_dir = run_dir
        self.cfg = cfg
        self.stream = stream
        self.manifest = manifest
        self.logger: RunLogger = build_logger(cfg.logger)

    @classmethod
    def create(cls, cfg: DictConfig, stream, source: dict | None = None, *, protocol: dict | None = None,
               plugins: list[dict] | None = None, execution: dict | None = None,
               loop: str | None = None) -> "RunWriter":
        """A new run folder. `source`: the method's provenance when the caller computed it (isolate=true), else
        `provenance.method_source` of the configured method; `protocol`: what the method was allowed to see;
        `plugins`: the foreign code imported (provenance.plugin_records); `execution`: how the method ran;
        `loop`: "external" for a loop of the user's own scored by StreamEvaluator."""
        run_id = cfg.run_id or f"{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-s{cfg.seed}-{secrets.token_hex(3)}"
        run_dir = Path(cfg.results_dir) / stream.name / cfg.method.name / run_id
        try:
            run_dir.mkdir(parents=True, exist_ok=False)  # exclusive: two runs never share a folder
        except FileExistsError:
            raise UserError(f"run folder {run_dir} already exists; choose another run_id=") from None
        except OSError as exc:
            raise UserError(f"cannot create the run folder {run_dir} ({exc.strerror}); set results_dir= to a writable folder") from None
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg))
        manifest = Manifest(
            run_id=run_id, status="running", stream=stream.name, stream_version=stream.version,
            stream_hash=stream.hash, step_image_hashes=stream.step_hashes(), step_classes=stream.step_classes,
            vocabulary=stream.vocabulary.name, method=cfg.method.name,
            model=OmegaConf.to_container(cfg.model), seed=cfg.seed,
            seeds={"seed": cfg.seed, "stream.order_seed": cfg.stream.order_seed, "data.demo_seed": cfg.data.demo_seed},
            git=provenance.git_state(), method_source=source or provenance.method_source(cfg.method.name),
            packages=provenance.package_versions(), python=platform.python_version(),
            host=socket.gethostname(), process=process_identity(), platform=platform.platform(),
            hardware=provenance.hardware(), device=cfg.device, started=utc_now(), finished=None,
            tracker_id=secrets.token_hex(8), loop=loop, **execution_record(protocol, plugins, execution))
        writer = cls(run_dir, cfg, stream, manifest)
        manifest.write(run_dir)
        writer.logger.start(run_dir, cfg, manifest.to_dict())
        return writer

    @classmethod
    def reopen(cls, run_dir: Path, cfg: DictConfig, stream, source: dict | None = None, *,
               protocol: dict | None = None, plugins: list[dict] | None = None,
               execution: dict | None = None) -> "RunWriter":
        """An interrupted run folder (`check_resumable`), its manifest `running` again with a `resumed` record
        (the arguments as in `create`)."""
        run_dir = Path(run_dir)
        manifest = check_resumable(run_dir, cfg, stream)
        resumption = {"at": utc_now(), "host": socket.gethostname(), "hardware": provenance.hardware(),
                      "git": provenance.git_state(),
                      "method_source": source or provenance.method_source(cfg.method.name),
                      "previous": {"status": manifest.status, "failure": manifest.failure}}
        manifest = dataclasses.replace(manifest, status="running", process=process_identity(), failure=None,
                                       resumed=[*(manifest.resumed or []), resumption],
                                       **execution_record(protocol, plugins, execution))
        writer = cls(run_dir, cfg, stream, manifest)
        manifest.write(run_dir)
        writer.logger.start(run_dir, cfg, manifest.to_dict())
        return writer

    @staticmethod
    def mark_unresumable(run_dir: Path, reason: str) -> None:
        """Record in a run's manifest that it cannot be continued (`failed`, `unresumable`: the reason), so that
        resume=auto passes over it from now on instead of trying it again on every start."""
        manifest = Manifest.read(run_dir)
        dataclasses.replace(manifest, status="failed", failure=reason, unresumable=reason).write(run_dir)

    def write_step(self, step: int, stats: dict[str, np.ndarray], record: dict) -> dict:
        """Persist the raw statistics of step t (`confusion`, and `pq_tp/fp/fn/iou_sum` on panoptic streams) and
        its record: costs (learn_seconds, eval_seconds, memory_bytes, trainable_parameters) and scores
        (miou_seen[, pq_seen]: benchmark.evaluation.summary.step_scores). Returns {"step": t, **record}."""
        atomic_save_npz(self.run_dir / STATS_DIR / step_stats_file(step), **stats)
        record = {"step": step, **record}
        atomic_write_json(self.run_dir / STATS_DIR / f"step_{step:03d}.json", finite(record))
        self.logger.log_step(finite(record))
        return record

    def write_initial(self, stats: dict[str, np.ndarray], record: dict) -> None:
        """Persist the raw statistics of the initial evaluation (every class, before step 0) and its record
        (eval_seconds, miou_all)."""
        atomic_save_npz(self.run_dir / STATS_DIR / INITIAL_STATS, **stats)
        atomic_write_json(self.run_dir / STATS_DIR / "initial.json", finite(record))

    def finish(self, summary: dict, plots: list[Path], passes: dict | None = None, data: dict | None = None) -> None:
        """The run complete: its manifest with the encoder `passes` and the validation `data` it was scored on
        (see the runner), once its `summary` and `plots` are written (write_run_results); both go to the tracker."""
        self.manifest = dataclasses.replace(self.manifest, passes=passes, data=data, status="complete",
                                            finished=utc_now())
        self.manifest.write(self.run_dir)
        self.logger.finish(summary, plots)

    def mark_ended(self, exc: BaseException) -> None:
        """Record why the run stopped: `interrupted` (Ctrl-C, SIGTERM, SIGHUP) or `failed`, with a one-line
        reason. When even the manifest cannot be written (a full disk), it keeps `running` and its readers show
        `stale` once this process has ended (benchmark.run.state)."""
        status = "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit, Terminated)) else "failed"
        self.manifest = dataclasses.replace(self.manifest, status=status, failure=failure_reason(exc),
                                            finished=utc_now())
        try:
            self.manifest.write(self.run_dir)
        except (OSError, UserError):  # the original error matters more than a manifest we cannot write
            pass
