"""Hostile workers, steered by the `plan.py` the test writes beside this module:
- method `hostile_reply`: the worker answers request plan.OP with plan.REPLY(*args) (a malformed reply);
- method `hostile_hang`: predict never returns (the parent's isolate_timeout_s must end the run);
- method `hostile_orphan`: learn leaves a double-forked grandchild in a session of its own, which writes
  "99.0" to plan.TARGET whenever that file exists (it must not outlive the run)."""
import os
import runpy
import sys
import time
from pathlib import Path

from baselines.zeroshot import ZeroShot
from benchmark.hosts.worker import worker as worker_module
from benchmark.method import register_method

PLAN = runpy.run_path(str(Path(__file__).parent / "plan.py"))
# the worker runs as `python -m benchmark.hosts.worker.worker`: its Worker class is __main__'s
Worker = getattr(sys.modules["__main__"], "Worker", worker_module.Worker)
_handle = Worker.handle


def _hostile_handle(self, op, args):
    if type(self.host.method).__name__ == "HostileReply" and op == PLAN.get("OP"):
        return PLAN["REPLY"](*args)
    return _handle(self, op, args)


Worker.handle = _hostile_handle


@register_method("hostile_reply")
class HostileReply(ZeroShot):
    pass


@register_method("hostile_hang")
class HostileHang(ZeroShot):
    def predict(self, images, vocab):
        time.sleep(3600)


def _outlive(target: Path) -> None:
    os.setsid()
    (target.parent / "orphan.pid").write_text(str(os.getpid()))
    for _ in range(600):
        if target.exists():
            target.write_text("99.0")
        time.sleep(0.1)


@register_method("hostile_orphan")
class HostileOrphan(ZeroShot):
    def learn(self, step):
        if step.step != 0:
            return
        child = os.fork()
        if child == 0:  # the child: fork the grandchild, then exit
            if os.fork() == 0:
                _outlive(Path(PLAN["TARGET"]))
            os._exit(0)
        try:
            os.waitpid(child, 0)
        except ChildProcessError:  # reaped already
            pass
