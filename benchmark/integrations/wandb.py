"""Experiment trackers fed by the run writer (benchmark.run.writer): `logger=none` (default) or `logger=wandb`.

A tracker is only an extra output: the run folder on disk is the record. So a tracker never fails a run:
the first error (no network, no API key, a wandb bug) is reported once as a warning and the tracker turns
itself off for the rest of the run.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


class RunLogger:
    """Does nothing: the interface RunWriter calls (start once, one call per step, finish once)."""

    def start(self, run_dir: Path, cfg: DictConfig, manifest: dict) -> None:
        pass

    def log_step(self, record: dict) -> None:
        pass

    def finish(self, summary: dict, plots: list[Path]) -> None:
        pass


class WandbLogger(RunLogger):
    """Weights & Biases: resolved config, per-step metrics, R matrices as wandb.Table, plots as images.

    Files go to <run_dir>/wandb/ (`WANDB_MODE=offline` or `logger.mode=offline`: sync later with
    `wandb sync <run_dir>/wandb/offline-run-*`)."""

    def __init__(self, settings: DictConfig) -> None:
        self.settings = settings
        self.run: Any = None
        self.failed = False

    def _guard(self, action: str, call) -> None:
        if self.failed:
            return
        try:
            call()
        except Exception as exc:  # noqa: BLE001  (any tracker error must leave the run going)
            self.failed = True
            reason = str(exc).splitlines()[0] if str(exc) else ""
            warnings.warn(f"wandb {action} failed ({type(exc).__name__}: {reason}); "
                          "continuing without wandb (results on disk are complete)", RuntimeWarning, stacklevel=3)
            self._close(exit_code=1)

    def _close(self, exit_code: int = 0) -> None:
        run, self.run = self.run, None
        if run is not None:
            try:
                run.finish(exit_code=exit_code)
            except Exception:  # noqa: BLE001  (already warned once)
                pass

    def start(self, run_dir: Path, cfg: DictConfig, manifest: dict) -> None:
        def init() -> None:
            import wandb

            self.run = wandb.init(
                project=self.settings.project, entity=self.settings.entity, mode=self.settings.mode,
                dir=str(run_dir), name=manifest["run_id"], group=manifest["stream"], job_type=manifest["method"],
                id=manifest.get("tracker_id"), resume="allow",  # resume=RUN_DIR continues the same wandb run
                config=OmegaConf.to_container(cfg, resolve=True),
                settings=wandb.Settings(init_timeout=self.settings.init_timeout, silent=True,
                                        reinit="finish_previous"),
            )
            self.run.config.update({"manifest": {k: manifest[k] for k in ("stream_hash", "stream_version", "git")}},
                                   allow_val_change=True)

        self._guard("init", init)

    def log_step(self, record: dict) -> None:
        def log() -> None:
            metrics = {key: value for key, value in record.items() if key != "step" and value is not None}
            self.run.log(metrics, step=int(record["step"]))

        self._guard("log", log)

    def finish(self, summary: dict, plots: list[Path]) -> None:
        def log_results() -> None:
            import wandb

            for metric, values in summary["metrics"].items():
                self.run.summary.update({f"{metric}/{key}": value for key, value in values.items()})
            tables = {}
            for metric, rows in summary["matrices"].items():
                columns = ["after_step"] + [f"C{j}" for j in range(len(rows[0]))]
                data = [[t, *row] for t, row in enumerate(rows)]
                tables[f"matrix_{metric}"] = wandb.Table(columns=columns, data=data)
            images = {f"plots/{path.stem}": wandb.Image(str(path)) for path in plots}
            self.run.log({**tables, **images})

        self._guard("finish", log_results)
        self._close()


def build_logger(settings: DictConfig) -> RunLogger:
    """The tracker named by `logger.name`."""
    return WandbLogger(settings) if settings.name == "wandb" else RunLogger()
