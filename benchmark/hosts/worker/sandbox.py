"""`sandbox=true` (with isolate=true): the worker confines its own file access with Linux Landlock (kernel
5.13+) before it imports any plugin. It may then read only the system folders, the Python installation, the
harness's packages and the plugin folders, and write only its scratch folder, the feature cache, the model
weights' caches and /dev: a data root (the demo's in $XDG_CACHE_HOME too), the run folders under results/ and
the rest of the file system are out of its reach (open() fails with PermissionError). Landlock is not a full sandbox: /proc still shows other
processes' command lines, and the network stays open."""
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
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/sys", "/opt")
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


def allowed_paths(scratch: Path, plugin_roots: list[Path], extra_read: list[Path],
                  feature_cache: Path | None) -> dict[str, list[str]]:
    """{"read": [...], "write": [...]} for the worker: computed by the parent, applied by the worker. Of the
    cache folders only the feature cache and the model weights' (torch, Hugging Face): the rest of
    $XDG_CACHE_HOME/covseg-bench holds the generated demo dataset."""
    read = [Path(p) for p in (*SYSTEM_READ, sys.prefix, sys.base_prefix, sys.exec_prefix)]
    read.append(Path(sys.executable).resolve().parent.parent)
    for entry in sys.path:
        path = Path(entry or ".").resolve()
        if (path / "benchmark" / "__init__.py").is_file():  # a checkout: its packages, not its results or data
            read += [path / package for package in PACKAGES]
        elif path.is_dir() and path != Path("/"):
            read.append(path)
    read += [*plugin_roots, *extra_read]
    home_cache = Path(os.environ.get("HOME", "/nonexistent")) / ".cache"
    weights = [Path(os.environ.get("TORCH_HOME") or home_cache / "torch"),
               Path(os.environ.get("HF_HOME") or home_cache / "huggingface")]
    if feature_cache is not None:
        feature_cache.mkdir(parents=True, exist_ok=True)  # a rule needs the folder to exist
    write = [scratch, Path("/dev"), *weights, *([feature_cache] if feature_cache is not None else [])]
    existing = lambda paths: sorted({str(p.resolve()) for p in paths if p.exists()})  # noqa: E731
    return {"read": existing(read), "write": existing(write)}


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def confine(paths: dict[str, list[str]]) -> None:
    """Restrict this process (and any it starts) to `paths` for good; raises OSError when the kernel refuses."""
    libc = _libc()
    abi = landlock_abi()
    handled = HANDLED.get(abi, (1 << 15) - 1)  # ABI >= 3: TRUNCATE as well
    attr = _RulesetAttr(handled)
    ruleset = libc.syscall(SYSCALLS["create_ruleset"], ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for rights, folders in ((READ, paths["read"]), (handled, paths["write"])):
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
