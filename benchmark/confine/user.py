"""Where the harness runs as root: the worker drops to an unprivileged user (the parent chooses it and whether
it keeps root's right to read, `CAP_DAC_READ_SEARCH`, which it needs where the Python it runs lies in a folder
only root may enter, such as /root/.pyenv; Landlock still bounds what it reads). Root's other rights (writing
any file, devices, kernel modules, other users' processes) are gone for good."""
from __future__ import annotations

import ctypes
import os

from benchmark.confine.landlock import libc

CAPABILITY_VERSION_3 = 0x20080522
CAP_DAC_READ_SEARCH = 2
PR_SET_DUMPABLE, PR_SET_KEEPCAPS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE = 4, 8, 47, 2


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def set_capabilities(mask: int) -> None:
    """Keep only the capabilities of `mask` (bits of the first 32), effective, permitted and inheritable."""
    data = (_CapData * 2)(_CapData(mask, mask, mask), _CapData(0, 0, 0))
    if libc().capset(ctypes.byref(_CapHeader(CAPABILITY_VERSION_3, 0)), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def _prctl(option: int, *args: int) -> None:
    if libc().prctl(option, *args, *[0] * (4 - len(args))) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def drop_privileges(uid: int, gid: int, read_override: bool) -> None:
    """Become `uid`:`gid` with no supplementary group and no capability, or only CAP_DAC_READ_SEARCH (kept
    across execve as an ambient capability) with `read_override`. Raises OSError where the kernel refuses."""
    if read_override:
        _prctl(PR_SET_KEEPCAPS, 1)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)  # as root: real, effective and saved ids alike
    if read_override:
        _prctl(PR_SET_KEEPCAPS, 0)
        set_capabilities(1 << CAP_DAC_READ_SEARCH)
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_READ_SEARCH)
    _prctl(PR_SET_DUMPABLE, 1)  # its own /proc entries stay its own (a changed uid makes them root's)
    if (os.getresuid(), os.getresgid()) != ((uid,) * 3, (gid,) * 3) or os.getgroups():
        raise OSError(f"the worker is still {os.getresuid()}:{os.getresgid()} after dropping to {uid}:{gid}")
