"""`sandbox=true` (with isolate=true), the parent's side: the plan the worker applies to itself before it
imports anything but the standard library (benchmark.confine): the folders it may read (the system folders,
the Python installation, the folders its Python imports from, never the current directory or a folder holding
the data root or the results, the plugin folders), those it may write (its scratch folder, the model weights'
caches, a few devices), and, where the harness runs as root, the unprivileged user it becomes. What this does
and does not guarantee: docs/isolation-guarantees.md."""
from __future__ import annotations

import os
import pwd
import stat
import sys
from pathlib import Path

from benchmark.confine.landlock import landlock_abi
from benchmark.errors import UserError

SYSTEM_READ = ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/sys", "/opt")
PACKAGES = ("benchmark", "baselines", "methods", "streams")  # of a checkout on sys.path: nothing else of it
# the devices a worker writes: never the disks (/dev/vda ...), which root could read around every rule
DEVICES = ("null", "zero", "full", "random", "urandom", "shm", "kfd", "dri")
DEVICE_PREFIXES = ("nvidia",)  # nvidiactl, nvidia0.., nvidia-uvm, nvidia-caps/
WORKER_USER = "nobody"  # who a worker started by root becomes (65534 where the system has no such user)


def check_available() -> None:
    if not landlock_abi():
        raise UserError("sandbox=true needs Linux Landlock (kernel 5.13+, enabled), which this system lacks; "
                        "run with sandbox=false (isolate=true alone still keeps the method in its own process)")


def code_folders(harness_root: Path, private: list[Path]) -> list[Path]:
    """The folders the worker's Python imports from: the harness's packages and each folder of sys.path but
    the current directory (which `python -m` puts there), a checkout's other folders, and any folder that
    holds or lies inside one of `private` (the data root, the results)."""
    cwd = Path.cwd().resolve()
    private = [p.expanduser().resolve() for p in private]
    folders = [harness_root / package for package in PACKAGES]
    for entry in sys.path:
        if entry in ("", "."):
            continue
        path = Path(entry).resolve()
        if (path / "benchmark" / "__init__.py").is_file():  # a checkout: its packages, not its results or data
            folders += [path / package for package in PACKAGES]
        elif path.is_dir() and path not in (Path("/"), cwd) and not any(
                path == p or path in p.parents or p in path.parents for p in private):
            folders.append(path)
    return folders


def devices() -> list[Path]:
    dev = Path("/dev")
    return [dev / name for name in DEVICES] + sorted(p for p in dev.iterdir() if p.name.startswith(DEVICE_PREFIXES))


def allowed_paths(scratch: Path, code: list[Path], extra_read: list[Path]) -> dict[str, list[str]]:
    """{"read": [...], "write": [...]} for the worker. `code`: the Python folders it imports from
    (`code_folders`) and the plugin folders. Of the cache folders only the model weights' (torch, Hugging
    Face): the shared feature cache stays out of reach (the worker keeps its own in `scratch`), and the rest
    of $XDG_CACHE_HOME/covseg-bench holds the generated demo dataset."""
    read = [Path(p) for p in (*SYSTEM_READ, sys.prefix, sys.base_prefix, sys.exec_prefix)]
    read.append(Path(sys.executable).resolve().parent.parent)
    read += [*code, *extra_read]
    home_cache = Path(os.environ.get("HOME", "/nonexistent")) / ".cache"
    weights = [Path(os.environ.get("TORCH_HOME") or home_cache / "torch"),
               Path(os.environ.get("HF_HOME") or home_cache / "huggingface")]
    write = [scratch, *devices(), *weights]
    existing = lambda paths: sorted({str(p.resolve()) for p in paths if p.exists()})  # noqa: E731
    return {"read": existing(read), "write": existing(write)}


def _allows(info: os.stat_result, uid: int, gid: int, bits: int) -> bool:
    shift = 6 if info.st_uid == uid else 3 if info.st_gid == gid else 0
    return (info.st_mode >> shift) & bits == bits


def unreadable(paths: list[str], uid: int, gid: int) -> str | None:
    """The first of `paths` that user `uid`:`gid` (no other group) cannot read by the permission bits (a
    folder on the way it cannot enter, or the path itself), or None."""
    for path in map(Path, paths):
        if not all(_allows(os.stat(folder), uid, gid, 0o1) for folder in path.parents):
            return str(path)
        info = os.stat(path)
        if not _allows(info, uid, gid, 0o5 if stat.S_ISDIR(info.st_mode) else 0o4):
            return str(path)
    return None


def worker_ids() -> tuple[int, int] | None:
    """Where this process is root: the user and group ids the worker becomes (WORKER_USER's); else None."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(WORKER_USER)
    except KeyError:
        return 65534, 65534
    return entry.pw_uid, entry.pw_gid


def worker_user(ids: tuple[int, int] | None, paths: dict[str, list[str]]) -> dict | None:
    """The plan's `user`: {uid, gid, read_override} for a worker started by root (None otherwise),
    `read_override` where that user could not read everything of `paths` (it then keeps root's right to
    read, which Landlock still bounds to the read list). The devices do not count: the user reads those open
    to all (root-only ones, such as /dev/nvidia-caps, it does without)."""
    if ids is None:
        return None
    uid, gid = ids
    needed = [*paths["read"], *(path for path in paths["write"] if not path.startswith("/dev/"))]
    return {"uid": uid, "gid": gid, "read_override": unreadable(needed, uid, gid) is not None}
