"""The run folder: results/<stream>/<method>/<run-id>/ (results/README.md describes every file)

    config.yaml          resolved configuration
    manifest.json        provenance: git commit and dirty flag, method source digest, package versions, seeds,
                         stream hash, hardware, timings, status, protocol (ground truth access)
    stats/step_NNN.npz   raw statistics of step t (confusion matrix, ...): every metric is derived from these
    stats/step_NNN.json  per-step costs: learn / eval seconds, memory bytes, trainable parameters
    class_scores.csv     per step and class: IoU (and PQ, SQ, RQ on panoptic streams), from the raw statistics
    stats/initial.npz    raw statistics of the initial evaluation (before step 0, every class: row -1 of R)
    stats/initial.json   its eval seconds and mIoU over every class
    matrix_<metric>.csv  R[t][j], with the initial row (index "initial") first when there is one
    summary.json         stream metrics (percent), matrices, memory, seconds
    plots/*.png          R heatmaps and the most forgotten classes (benchmark.reporting.plots)

Every file is written atomically; `manifest.json` says `"status": "complete"` only once everything is written.
The configured tracker (`logger=`) receives the same numbers as they are written.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import os
import platform
import secrets
import socket
import subprocess
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from benchmark.errors import UserError
from benchmark.evaluation.panoptic import per_class_pq
from benchmark.evaluation.semantic import mean_iou
from benchmark.io import atomic_save_npz, atomic_write_json, atomic_write_text
from benchmark.reporting.loggers import RunLogger, build_logger
from benchmark.reporting.plots import write_run_plots
from benchmark.reporting.summary import (INITIAL_STATS, build_summary, finite, format_summary, load_confusions,
                                        panoptic_stats, write_class_scores, write_summary)
from benchmark.resume import check_resumable
from benchmark.run_state import Terminated, process_identity

PACKAGES = ("torch", "open_clip_torch", "faiss-cpu", "timm", "avalanche-lib", "numpy", "scipy", "scikit-image",
            "Pillow", "omegaconf", "hydra-core", "pandas", "matplotlib", "wandb")
REPO_ROOT = Path(__file__).resolve().parents[2]


def failure_reason(exc: BaseException, limit: int = 300) -> str:
    """One line saying why a run stopped: a user error's own message, else the exception type and message."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if not isinstance(exc, UserError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)


def checkout_root() -> Path | None:
    """REPO_ROOT when it is the top of a git working tree (a source checkout; editable installs run from one), else
    None: an installed wheel, also one installed into a .venv inside some checkout (git would answer for that
    checkout, not for the installed files)."""
    try:
        top = _git("rev-parse", "--show-toplevel")
    except (OSError, subprocess.SubprocessError):
        return None
    return REPO_ROOT if top.returncode == 0 and Path(top.stdout.strip()).resolve() == REPO_ROOT.resolve() else None


def distribution_state() -> dict | None:
    """The installed covseg-bench distribution the code runs from (its dist-info beside the packages): version and
    sha256 of its RECORD, which lists every installed file with the file's own sha256. None when there is none."""
    for distribution in metadata.distributions(path=[str(REPO_ROOT)]):
        if (distribution.metadata["Name"] or "").lower().replace("_", "-") == "covseg-bench":
            record = distribution.read_text("RECORD") or ""
            return {"name": "covseg-bench", "version": distribution.version,
                    "record_sha256": hashlib.sha256(record.encode()).hexdigest() if record else None}
    return None


def _is_virtual_environment(change: str) -> bool:
    """An untracked folder holding pyvenv.cfg: a virtual environment made inside the checkout (venv/, env/)."""
    return change.endswith("/") and (REPO_ROOT / change / "pyvenv.cfg").is_file()


def git_state() -> dict:
    """HEAD and whether the working tree differs from it: `dirty` is True when `git status --porcelain` lists
    anything (modified, staged or untracked files; ignored ones, virtual environments and anything under
    results/, the run outputs and tables that may be committed, do not count). Outside a checkout (an installed
    wheel) `commit` and `dirty` are None and `distribution` identifies the installed code (`distribution_state`).
    `changes` names up to 50 of the listed paths."""
    outside = {"commit": None, "dirty": None, "changes": []}
    if checkout_root() is None:
        return {**outside, "distribution": distribution_state()}
    try:
        head = _git("rev-parse", "HEAD")
        status = _git("status", "--porcelain", "--", ".", ":(exclude)results")
    except (OSError, subprocess.SubprocessError):
        return outside
    if head.returncode or status.returncode:
        return outside
    changes = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    changes = [change for change in changes if not _is_virtual_environment(change)]
    return {"commit": head.stdout.strip() or None, "dirty": bool(changes), "changes": changes[:50]}


PLUGIN_ROOTS = ("methods", "baselines")  # folders whose modules are registered method sources


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _source_key(path: Path) -> str:
    """A source file's name in the manifest: relative to the repository when inside it, else absolute."""
    path = path.resolve()
    try:
        return path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def _in_repo(path: Path) -> bool:
    """Inside this repository and not in an installed environment (.venv/, site-packages)."""
    try:
        parts = path.resolve().relative_to(REPO_ROOT).parts
    except ValueError:
        return False
    return not any(part.startswith(".") or part in ("site-packages", "dist-packages") for part in parts[:-1])


def method_source_files(method_cls: type) -> list[Path]:
    """The source files a method's behaviour comes from: the module defining the class (with, when that module
    lies in a package under methods/ or baselines/, e.g. methods/knnclip/, every .py file of that package),
    and the module of every class in its MRO that lives in this repository (baselines/trainable.py,
    benchmark/method.py, ...)."""
    files: list[Path] = []
    for position, klass in enumerate(method_cls.__mro__):
        try:
            source = inspect.getsourcefile(klass)
        except TypeError:  # builtins (object)
            source = None
        if source is None:
            continue
        path = Path(source).resolve()
        if position > 0 and not _in_repo(path):
            continue
        files.append(path)
        if position == 0 and _in_repo(path):
            parts = path.relative_to(REPO_ROOT).parts
            if len(parts) > 2 and parts[0] in PLUGIN_ROOTS:  # methods/<package>/...: the whole package
                files += sorted((REPO_ROOT / parts[0] / parts[1]).rglob("*.py"))
    unique = {_source_key(f): f for f in files if f.is_file()}
    return [unique[key] for key in sorted(unique)]


def source_digest(files: dict[str, str]) -> str:
    """One sha256 over the {file: sha256} of a method's sources (file names included)."""
    return hashlib.sha256("".join(f"{name}\0{files[name]}\n" for name in sorted(files)).encode()).hexdigest()


def method_source(name: str) -> dict:
    """Provenance of a method's code: `digest` (source_digest over `files`), `files` {path: sha256} (paths
    relative to the repository), `registered` (the defining module lies in this repository's methods/ or
    baselines/), `module` and `untracked` (recorded files git does not track; [] outside a checkout)."""
    from benchmark.method import METHODS
    from benchmark.plugins import load_methods

    if name not in METHODS:
        load_methods(name)
    method_cls = METHODS.get(name)
    defining = Path(inspect.getsourcefile(method_cls) or "").resolve()
    registered = _in_repo(defining) and defining.relative_to(REPO_ROOT).parts[0] in PLUGIN_ROOTS
    return source_record(method_source_files(method_cls), registered, method_cls.__module__, method_cls.__qualname__)


def source_record(paths: list[Path], registered: bool, module: str, qualname: str) -> dict:
    """`method_source`'s record of the source files `paths` (hashed here, from disk)."""
    files = {_source_key(path): file_sha256(path) for path in paths}
    untracked: list[str] = []
    in_repo = [key for key in files if not key.startswith("/")]
    try:
        if in_repo and checkout_root() is not None:  # an installed wheel has no tracked files to compare
            tracked = set(_git("ls-files", "--", *in_repo).stdout.splitlines())
            untracked = [key for key in in_repo if key not in tracked]
    except (OSError, subprocess.SubprocessError):
        pass
    return {"digest": source_digest(files), "files": files, "registered": bool(registered),
            "module": module, "class": qualname, "untracked": untracked}


def current_source_state(recorded: dict) -> tuple[str | None, list[str]]:
    """The digest of a manifest's recorded method files as they are on disk now (None when one is missing)
    and the names of the files that differ from the record (missing ones included)."""
    files = recorded.get("files") or {}
    now, changed = {}, []
    for key, sha in files.items():
        path = Path(key) if key.startswith("/") else REPO_ROOT / key
        try:
            now[key] = file_sha256(path)
        except OSError:
            changed.append(key)
            continue
        if now[key] != sha:
            changed.append(key)
    return (source_digest(now) if len(now) == len(files) else None), sorted(changed)


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def hardware() -> dict:
    """CPU model, cores, RAM and GPUs of this machine (what timings and memory figures depend on)."""
    cpu = platform.processor() or None
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        ram = None
    gpus = []
    try:
        import torch

        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001  (a broken CUDA setup must not stop a CPU run)
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cpu_cores": os.cpu_count(), "cpu_cores_usable": usable, "ram_bytes": ram, "gpus": gpus}


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES")


def torch_environment() -> dict:
    """What `torch.utils.collect_env` reports that timings and numbers depend on, without its subprocesses:
    torch, CUDA and cuDNN versions, the intra- and inter-op thread counts, the parallel backend, and the
    thread-related environment variables."""
    import torch

    parallel = torch.__config__.parallel_info().splitlines()
    return {
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "intra_op_threads": torch.get_num_threads(), "inter_op_threads": torch.get_num_interop_threads(),
        "parallel_backend": next((line.split(":", 1)[1].strip() for line in parallel
                                  if line.startswith("ATen parallel backend")), None),
        "mkl": torch.backends.mkl.is_available(), "openmp": torch.backends.openmp.is_available(),
        "variables": {name: os.environ.get(name) for name in THREAD_VARIABLES},
    }


class RunWriter:
    def __init__(self, run_dir: Path, cfg: DictConfig, stream) -> None:
        self.run_dir = run_dir
        self.cfg = cfg
        self.stream = stream
        self.manifest: dict = {}
        self.logger: RunLogger = build_logger(cfg.logger)

    @classmethod
    def create(cls, cfg: DictConfig, stream, source: dict | None = None) -> "RunWriter":
        """A new run folder; `source`: the method's provenance when the caller computed it (isolate=true),
        else `method_source` of the configured method."""
        run_id = cfg.run_id or f"{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-s{cfg.seed}-{secrets.token_hex(3)}"
        run_dir = Path(cfg.results_dir) / stream.name / cfg.method.name / run_id
        try:
            run_dir.mkdir(parents=True, exist_ok=False)  # exclusive: two runs never share a folder
        except FileExistsError:
            raise UserError(f"run folder {run_dir} already exists; choose another run_id=") from None
        except OSError as exc:
            raise UserError(f"cannot create the run folder {run_dir} ({exc.strerror}); set results_dir= to a writable folder") from None
        writer = cls(run_dir, cfg, stream)
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg))
        writer.manifest = {
            "run_id": run_id, "status": "running", "stream": stream.name, "stream_version": stream.version,
            "stream_hash": stream.hash, "step_image_hashes": stream.step_hashes(), "step_classes": stream.step_classes,
            "vocabulary": stream.vocabulary.name, "method": cfg.method.name,
            "model": OmegaConf.to_container(cfg.model), "seed": cfg.seed,
            "seeds": {"seed": cfg.seed, "stream.order_seed": cfg.stream.order_seed,
                      "data.demo_seed": cfg.data.demo_seed},
            "git": git_state(), "method_source": source or method_source(cfg.method.name),
            "packages": package_versions(), "python": platform.python_version(),
            "host": socket.gethostname(), "process": process_identity(), "platform": platform.platform(),
            "hardware": hardware(),
            "device": cfg.device, "started": utc_now(), "finished": None,
            "tracker_id": secrets.token_hex(8),  # the experiment tracker's run id, so a resumed run continues it
        }
        atomic_write_json(run_dir / "manifest.json", writer.manifest)
        writer.logger.start(run_dir, cfg, writer.manifest)
        return writer

    @classmethod
    def reopen(cls, run_dir: Path, cfg: DictConfig, stream, source: dict | None = None) -> "RunWriter":
        """An interrupted run folder (`check_resumable`), its manifest `running` again with a `resumed` record
        (`source` as in `create`)."""
        run_dir = Path(run_dir)
        manifest = check_resumable(run_dir, cfg, stream)
        writer = cls(run_dir, cfg, stream)
        resumption = {"at": utc_now(), "host": socket.gethostname(), "hardware": hardware(), "git": git_state(),
                      "method_source": source or method_source(cfg.method.name),
                      "previous": {"status": manifest.get("status"), "failure": manifest.get("failure")}}
        manifest.pop("failure", None)
        writer.manifest = {**manifest, "status": "running", "process": process_identity(),
                           "resumed": [*manifest.get("resumed", []), resumption]}
        atomic_write_json(run_dir / "manifest.json", writer.manifest)
        writer.logger.start(run_dir, cfg, writer.manifest)
        return writer

    def write_step(self, step: int, stats: dict[str, np.ndarray], learn_seconds: float, eval_seconds: float,
                   memory_bytes: int, trainable_parameters: int = 0) -> dict:
        """Persist the raw statistics of step t (`confusion`, and `pq_tp/fp/fn/iou_sum` on panoptic streams)."""
        atomic_save_npz(self.run_dir / "stats" / f"step_{step:03d}.npz", **stats)
        seen = self.stream.seen_classes(step)
        record = {
            "step": step, "learn_seconds": learn_seconds, "eval_seconds": eval_seconds,
            "memory_bytes": int(memory_bytes), "trainable_parameters": int(trainable_parameters),
            "miou_seen": mean_iou(stats["confusion"], seen, self.cfg.eval.miou_mode),
        }
        if "pq_tp" in stats:
            pq, _, _, counted = per_class_pq(panoptic_stats(stats))
            scored = [c for c in seen if counted[c]]
            record["pq_seen"] = float(100 * pq[scored].mean()) if scored else float("nan")
        atomic_write_json(self.run_dir / "stats" / f"step_{step:03d}.json", finite(record))
        self.logger.log_step(finite(record))
        return record

    def write_initial(self, stats: dict[str, np.ndarray], eval_seconds: float) -> dict:
        """Persist the raw statistics of the initial evaluation (every class, before step 0)."""
        atomic_save_npz(self.run_dir / "stats" / INITIAL_STATS, **stats)
        classes = [c for step in self.stream.step_classes for c in step]
        miou_all = mean_iou(stats["confusion"], classes, self.cfg.eval.miou_mode)
        record = {"eval_seconds": eval_seconds, "miou_all": miou_all}
        atomic_write_json(self.run_dir / "stats" / "initial.json", finite(record))
        return record

    def finish(self) -> dict:
        summary = build_summary(self.run_dir, self.stream.step_classes, self.stream.name, self.cfg.method.name,
                                self.cfg.eval.miou_mode)
        write_summary(self.run_dir, summary)
        write_class_scores(self.run_dir, self.stream.step_classes, self.stream.vocabulary.names)
        plots = self.write_plots(summary)
        self.manifest.update(status="complete", finished=utc_now())
        atomic_write_json(self.run_dir / "manifest.json", self.manifest)
        self.logger.finish(summary, plots)
        return summary

    def mark_ended(self, exc: BaseException) -> None:
        """Record why the run stopped: `interrupted` (Ctrl-C, SIGTERM, SIGHUP) or `failed`, with a one-line
        reason. When even the manifest cannot be written (a full disk), it keeps `running` and its readers show
        `stale` once this process has ended (benchmark.run_state)."""
        status = "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit, Terminated)) else "failed"
        self.manifest.update(status=status, failure=failure_reason(exc), finished=utc_now())
        try:
            atomic_write_json(self.run_dir / "manifest.json", self.manifest)
        except (OSError, UserError):  # the original error matters more than a manifest we cannot write
            pass

    def write_plots(self, summary: dict) -> list[Path]:
        """The run's figures; a plotting error is reported and leaves the (complete) numbers alone."""
        try:
            return write_run_plots(self.run_dir, summary, self.stream.step_classes, self.stream.vocabulary.names,
                                   load_confusions(self.run_dir))
        except Exception as exc:  # noqa: BLE001  (figures are derived; the run's record is already on disk)
            warnings.warn(f"could not draw the plots of {self.run_dir} ({type(exc).__name__}: {exc}); "
                          f"redraw them with `python -m benchmark report {self.run_dir}`", RuntimeWarning, stacklevel=2)
            return []

    def format_summary(self, summary: dict) -> str:
        return format_summary(summary, self.run_dir)
