"""Provenance of a run: the code, packages and machine its numbers come from.

`git_state` (commit, dirty flag; the installed distribution outside a checkout), `method_source` (a digest over
the method's source files), `plugin_records` (every foreign module a run imported), `package_versions`,
`hardware` and `torch_environment`. The run writer records them in the manifest (benchmark.run.manifest); the
leaderboard compares the recorded digests with the files on disk now (`current_source_state`).
"""
from __future__ import annotations

import hashlib
import inspect
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "open_clip_torch", "faiss-cpu", "timm", "avalanche-lib", "numpy", "scipy", "scikit-image",
            "Pillow", "omegaconf", "hydra-core", "pandas", "matplotlib", "wandb")
REPO_ROOT = Path(__file__).resolve().parents[1]


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


def in_repo(path: Path) -> bool:
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
        if position > 0 and not in_repo(path):
            continue
        files.append(path)
        if position == 0 and in_repo(path):
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
    registered = in_repo(defining) and defining.relative_to(REPO_ROOT).parts[0] in PLUGIN_ROOTS
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


def code_records(files: dict[str, Path]) -> list[dict]:
    """The manifest's `plugins`: [{module, path, sha256}] of {module: file}, by module name."""
    return [{"module": name, "path": str(path), "sha256": file_sha256(path)}
            for name, path in sorted(files.items()) if path.is_file()]


def plugin_records(method: str | None) -> list[dict]:
    """`code_records` of every foreign module a run of `method` finds or imports (benchmark.plugins: the modules
    of $COVSEG_PATH and of the method's entry points, whether or not they registered the method)."""
    from benchmark.plugins import foreign_module_files

    return code_records(foreign_module_files(method))
