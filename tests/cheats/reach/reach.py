"""Method `cheat_reach`: at its first learn, tries what a sandboxed worker must not do, per the `plan.py`
beside this module: read the parent's command line and environment from /proc (which name the data root),
read plan.SECRET (a file in the parent's current directory), write an entry into plan.SHARED_CACHE (the feature
cache other runs read). It fails the run naming whatever it reached; otherwise it is zero-shot."""
import os
import runpy
from pathlib import Path

from baselines.zeroshot import ZeroShot
from benchmark.method import register_method

PLAN = runpy.run_path(str(Path(__file__).parent / "plan.py"))


def _reached() -> list[str]:
    tries = {
        "the parent's cmdline": lambda: Path(f"/proc/{os.getppid()}/cmdline").read_bytes(),
        "the parent's environ": lambda: Path(f"/proc/{os.getppid()}/environ").read_bytes(),
        "a file of the parent's current directory": lambda: Path(PLAN["SECRET"]).read_bytes(),
        "the shared feature cache": lambda: (Path(PLAN["SHARED_CACHE"]) / "poisoned.npz").write_bytes(b"100"),
    }
    reached = []
    for what, attempt in tries.items():
        try:
            attempt()
            reached.append(what)
        except OSError:
            pass
    return reached


@register_method("cheat_reach")
class CheatReach(ZeroShot):
    def learn(self, step):
        reached = _reached()
        if reached:
            raise RuntimeError(f"reached {', '.join(reached)}")
