"""`sandbox=true` (with isolate=true): the worker confines its own file access with Linux Landlock (kernel
5.13+) before it imports any plugin. It may then read only the system folders, the Python installation, the
folders its Python imports from (never the current directory or a folder holding the data root or the
results), the plugin folders, its own /proc entries, and write only its scratch folder, the feature cache, the
model weights' caches and /dev. What this does and does not guarantee: docs/isolation-guarantees.md."""
from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

from benchmark.errors import UserError

SYSCALLS = {"create_ruleset": 444, "add_rule": 445, "restrict_self": 446}  # the same on x86-64 and arm64
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
READ = EXECUTE | READ_FILE | READ_DIR
# ABI 1 handles bits 0..12 (read, write, remove, make ...); ABI 2 adds REFER (bit 13), ABI 3 TRUNCATE (bit 14)
HANDLED = {1: (1 << 13) - 1, 2: (1 << 14) - 1}
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/sys", "/opt")
# of /proc, the worker reads its own entries (/proc/<its pid>, which /proc/self names) and these system-wide
# files only: other processes' command lines and environments (the parent's names the data root) stay out
PROC_READ = ("cpuinfo", "meminfo", "stat", "sys", "filesystems", "loadavg", "version", "uptime")
PACKAGES = ("benchmark", "baselines", "methods", "streams")  # of a checkout on sys.path: nothing else of it


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 where there is none (other systems, old kernels, disabled)."""
    if not sys.platform.startswith("linux"):
        return 0
    version = _libc().syscall(SYSCALLS["create_ruleset"], None, ctypes.c_size_t(0), CREATE_RULESET_VERSION)
    return max(int(version), 0)


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


def allowed_paths(scratch: Path, code: list[Path], extra_read: list[Path]) -> dict[str, list[str]]:
    """{"read": [...], "write": [...]} for the worker: computed by the parent, applied by the worker. `code`:
    the Python folders it imports from (`code_folders`) and the plugin folders. Of the cache folders only the
    model weights' (torch, Hugging Face): the shared feature cache stays out of reach (the worker keeps its
    own in `scratch`), and the rest of $XDG_CACHE_HOME/covseg-bench holds the generated demo dataset."""
    read = [Path(p) for p in (*SYSTEM_READ, sys.prefix, sys.base_prefix, sys.exec_prefix)]
    read.append(Path(sys.executable).resolve().parent.parent)
    read += [*code, *extra_read]
    home_cache = Path(os.environ.get("HOME", "/nonexistent")) / ".cache"
    weights = [Path(os.environ.get("TORCH_HOME") or home_cache / "torch"),
               Path(os.environ.get("HF_HOME") or home_cache / "huggingface")]
    write = [scratch, Path("/dev"), *weights]
    existing = lambda paths: sorted({str(p.resolve()) for p in paths if p.exists()})  # noqa: E731
    return {"read": existing(read), "write": existing(write)}


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


# ABI 4 (kernel 6.7+): TCP bind and connect handled, none allowed; ABI 6 (6.12+): abstract unix sockets and
# signals scoped to the worker's own domain (it cannot connect to or signal processes outside it)
NET_TCP = 0b11
SCOPED = 0b11


def _ruleset(abi: int, handled_fs: int) -> tuple[_RulesetAttr, int]:
    """The ruleset attribute for this ABI and its size (older kernels refuse fields they do not know)."""
    attr = _RulesetAttr(handled_fs, NET_TCP if abi >= 4 else 0, SCOPED if abi >= 6 else 0)
    return attr, 24 if abi >= 6 else 16 if abi >= 4 else 8


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def confine(paths: dict[str, list[str]]) -> None:
    """Restrict this process (and any it starts) to `paths` for good; raises OSError when the kernel refuses."""
    libc = _libc()
    abi = landlock_abi()
    handled = HANDLED.get(abi, (1 << 15) - 1)  # ABI >= 3: TRUNCATE as well
    attr, size = _ruleset(abi, handled)
    ruleset = libc.syscall(SYSCALLS["create_ruleset"], ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    own_proc = [p for p in (f"/proc/{os.getpid()}", *(f"/proc/{name}" for name in PROC_READ)) if os.path.exists(p)]
    try:
        for rights, folders in ((READ, [*paths["read"], *own_proc]), (handled, paths["write"])):
            for folder in folders:
                access = rights
                fd = os.open(folder, os.O_PATH | os.O_CLOEXEC)
                try:
                    if not os.path.isdir(folder):  # a file takes file rights only
                        access &= EXECUTE | READ_FILE | WRITE_FILE
                    rule = _PathBeneathAttr(access, fd)
                    if libc.syscall(SYSCALLS["add_rule"], ruleset, RULE_PATH_BENEATH, ctypes.byref(rule), 0) < 0:
                        raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {folder}")
                finally:
                    os.close(fd)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(SYSCALLS["restrict_self"], ruleset, 0) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
