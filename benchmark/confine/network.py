"""Keeping the worker off the network, whatever the kernel's Landlock covers: a network namespace of its own
(no interface but a loopback that is down: every IP socket fails, abstract unix sockets are its own), made as
root directly or, as a user, inside a new user namespace; where the kernel refuses both, a seccomp filter
that refuses socket(2) for any address family but unix and netlink (and io_uring, which could open sockets
unseen). Which one took hold goes into the manifest's `execution.network`."""
from __future__ import annotations

import ctypes
import errno
import os
import platform

from benchmark.confine.landlock import libc
from benchmark.confine.user import set_capabilities

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def unshare_network() -> bool:
    """Move this (single-threaded) process into a network namespace of its own; False where the kernel
    refuses. As a user: inside a new user namespace that maps only its own ids, keeping no capability."""
    lib = libc()
    if os.geteuid() == 0:
        return lib.unshare(CLONE_NEWNET) == 0
    uid, gid = os.geteuid(), os.getegid()
    if lib.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        return False
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    set_capabilities(0)
    return True


# per architecture: its audit id, socket(2)'s and seccomp(2)'s numbers; io_uring_setup is 425 on both
ARCHITECTURES = {"x86_64": (0xC000003E, 41, 317), "aarch64": (0xC00000B7, 198, 277)}
IO_URING_SETUP = 425
X32_BIT = 0x40000000  # x86-64's x32 system calls: numbers with this bit, refused altogether
AF_UNIX, AF_NETLINK = 1, 16
LD_W_ABS, JEQ_K, JGE_K, RET_K = 0x20, 0x15, 0x35, 0x06
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC = 1, 1


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def socket_filter(arch: int, socket_nr: int) -> list[tuple[int, int, int, int]]:
    """The BPF program (code, jump if true, jump if false, k): system calls of another architecture (x86-64's
    32-bit ones), x32 calls and io_uring_setup refused; socket(2) refused but for unix and netlink sockets."""
    refuse, refuse_socket = SECCOMP_RET_ERRNO | errno.EPERM, SECCOMP_RET_ERRNO | errno.EACCES
    return [
        (LD_W_ABS, 0, 0, 4), (JEQ_K, 1, 0, arch), (RET_K, 0, 0, refuse),  # seccomp_data.arch
        (LD_W_ABS, 0, 0, 0), (JGE_K, 0, 1, X32_BIT), (RET_K, 0, 0, refuse),  # seccomp_data.nr
        (JEQ_K, 0, 1, IO_URING_SETUP), (RET_K, 0, 0, refuse),
        (JEQ_K, 1, 0, socket_nr), (RET_K, 0, 0, SECCOMP_RET_ALLOW),
        (LD_W_ABS, 0, 0, 16),  # the low word of socket's first argument, the address family (little-endian)
        (JEQ_K, 2, 0, AF_UNIX), (JEQ_K, 1, 0, AF_NETLINK), (RET_K, 0, 0, refuse_socket),
        (RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]


def filter_sockets() -> bool:
    """Install `socket_filter` on every thread of this process (after no_new_privileges); False where the
    architecture or the kernel does not allow it."""
    if platform.machine() not in ARCHITECTURES:
        return False
    arch, socket_nr, seccomp_nr = ARCHITECTURES[platform.machine()]
    program = socket_filter(arch, socket_nr)
    instructions = (_SockFilter * len(program))(*(_SockFilter(*instruction) for instruction in program))
    fprog = _SockFprog(len(program), instructions)
    done = libc().syscall(seccomp_nr, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, ctypes.byref(fprog))
    return done == 0
