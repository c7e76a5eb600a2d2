"""Methods that try, at their first learn, what a sandboxed worker must not do (per the `plan.py` the test
writes beside this module); each fails the run naming whatever it reached, otherwise it is zero-shot:
- `cheat_network`: a UDP datagram to plan.UDP_PORT and a TCP connection to plan.TCP_PORT on 127.0.0.1
  (sockets the test listens on);
- `cheat_root` (run by root): runs as root, writes plan.ROOT_FILE (a root-owned file in a folder the sandbox
  lets it write: the model weights' cache) and reads plan.DEVICE (a disk, which root reads around any rule)."""
import os
import runpy
import socket
from pathlib import Path

from baselines.zeroshot import ZeroShot
from benchmark.method import register_method

PLAN = runpy.run_path(str(Path(__file__).parent / "plan.py"))


def _udp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"the labels", ("127.0.0.1", PLAN["UDP_PORT"]))


def _tcp() -> None:
    with socket.create_connection(("127.0.0.1", PLAN["TCP_PORT"]), timeout=5) as tcp:
        tcp.sendall(b"the labels")


def _root() -> None:
    if os.getuid() == 0 or os.geteuid() == 0:
        return
    raise OSError("not root")


def _device() -> None:
    with open(PLAN["DEVICE"], "rb") as device:
        device.read(512)


def _reached(tries: dict) -> list[str]:
    reached = []
    for what, attempt in tries.items():
        try:
            attempt()
            reached.append(what)
        except OSError:
            pass
    return reached


class _Escape(ZeroShot):
    TRIES: dict = {}

    def learn(self, step):
        reached = _reached(self.TRIES)
        if reached:
            raise RuntimeError(f"reached {', '.join(reached)}")


@register_method("cheat_network")
class CheatNetwork(_Escape):
    TRIES = {"a UDP socket on 127.0.0.1": _udp, "a TCP socket on 127.0.0.1": _tcp}


@register_method("cheat_root")
class CheatRoot(_Escape):
    TRIES = {"root's user id": _root, "a root-owned file": lambda: Path(PLAN["ROOT_FILE"]).write_bytes(b"99.0"),
             **({"a disk device": _device} if PLAN.get("DEVICE") else {})}
