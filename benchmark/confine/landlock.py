"""Linux Landlock (kernel 5.13+): the worker restricts its own file access (and, from ABI 4, TCP; from ABI 6,
signals and abstract unix sockets) to the parent's lists, for good and for every process it starts."""
from __future__ import annotations

import ctypes
import os
import sys

SYSCALLS = {"create_ruleset": 444, "add_rule": 445, "restrict_self": 446}  # the same on x86-64 and arm64
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR, TRUNCATE = 1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 14
READ = EXECUTE | READ_FILE | READ_DIR
# ABI 1 handles bits 0..12 (read, write, remove, make ...); ABI 2 adds REFER (bit 13), ABI 3 TRUNCATE (bit 14)
HANDLED = {1: (1 << 13) - 1, 2: (1 << 14) - 1}
# of /proc, the worker reads its own entries (/proc/<its pid>, which /proc/self names) and these system-wide
# files only: other processes' command lines and environments (the parent's names the data root) stay out
PROC_READ = ("cpuinfo", "meminfo", "stat", "sys", "filesystems", "loadavg", "version", "uptime")
# ABI 4 (kernel 6.7+): TCP bind and connect handled, none allowed; ABI 6 (6.12+): abstract unix sockets and
# signals scoped to the worker's own domain (it cannot connect to or signal processes outside it)
NET_TCP = 0b11
SCOPED = 0b11


def libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 where there is none (other systems, old kernels, disabled)."""
    if not sys.platform.startswith("linux"):
        return 0
    version = libc().syscall(SYSCALLS["create_ruleset"], None, ctypes.c_size_t(0), CREATE_RULESET_VERSION)
    return max(int(version), 0)


def no_new_privileges() -> None:
    """No execve of this process or its children gains privileges (set-user-ID files, file capabilities)."""
    if libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


def _ruleset(abi: int, handled_fs: int) -> tuple[_RulesetAttr, int]:
    """The ruleset attribute for this ABI and its size (older kernels refuse fields they do not know)."""
    attr = _RulesetAttr(handled_fs, NET_TCP if abi >= 4 else 0, SCOPED if abi >= 6 else 0)
    return attr, 24 if abi >= 6 else 16 if abi >= 4 else 8


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def confine(paths: dict[str, list[str]]) -> None:
    """Restrict this process (and any it starts) to reading `paths["read"]` and writing `paths["write"]`, for
    good; raises OSError when the kernel refuses."""
    lib = libc()
    abi = landlock_abi()
    handled = HANDLED.get(abi, (1 << 15) - 1)  # ABI >= 3: TRUNCATE as well
    attr, size = _ruleset(abi, handled)
    ruleset = lib.syscall(SYSCALLS["create_ruleset"], ctypes.byref(attr), ctypes.c_size_t(size), 0)
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
                        access &= EXECUTE | READ_FILE | WRITE_FILE | TRUNCATE
                    rule = _PathBeneathAttr(access, fd)
                    if lib.syscall(SYSCALLS["add_rule"], ruleset, RULE_PATH_BENEATH, ctypes.byref(rule), 0) < 0:
                        raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {folder}")
                finally:
                    os.close(fd)
        no_new_privileges()
        if lib.syscall(SYSCALLS["restrict_self"], ruleset, 0) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
