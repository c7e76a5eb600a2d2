"""`python -m benchmark.confine FD`: the worker's first stage under sandbox=true (see the package's docstring).
Protocol: the parent sends ("contain", plan), plan = {read, write: [paths], user: {uid, gid, read_override} or
None}; this stage confines itself, answers ("ok", {"network": ...}) or ("error", {...}) and exits 1, then runs
benchmark.hosts.worker.worker on the same socket."""
from __future__ import annotations

import os
import pickle
import runpy
import sys
from multiprocessing.connection import Connection

from benchmark.confine.landlock import confine, landlock_abi
from benchmark.confine.network import filter_sockets, unshare_network
from benchmark.confine.user import drop_privileges


def contain(plan: dict) -> dict:
    """Apply `plan` to this process, in the order each step needs: the network namespace (as root or in a
    new user namespace) before the drop, Landlock after it, the seccomp filter last (on Landlock's
    no_new_privs)."""
    network = "netns" if unshare_network() else None
    if plan["user"] is not None:
        try:
            drop_privileges(**plan["user"])
        except OSError as exc:
            raise OSError(f"cannot drop root to user id {plan['user']['uid']} ({exc})") from None
    try:
        confine(plan)
    except OSError as exc:
        raise OSError(f"Landlock refused the worker's rules ({exc})") from None
    if network is None:
        network = "seccomp" if filter_sockets() else "landlock-tcp" if landlock_abi() >= 4 else "none"
    return {"network": network}


def main(fd: int) -> int:
    channel = Connection(os.dup(fd))  # closing it leaves `fd` to the worker
    try:
        _, plan = pickle.loads(channel.recv_bytes())
        reply = ("ok", contain(plan))
    except (OSError, KeyError, TypeError, ValueError) as exc:
        reply = ("error", {"type": type(exc).__name__, "message": f"sandbox=true: {exc}", "user": True})
    channel.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
    channel.close()
    if reply[0] == "error":
        return 1
    runpy.run_module("benchmark.hosts.worker.worker", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
