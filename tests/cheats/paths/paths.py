"""Method `cheat_paths`: its worker names state files the parent must not follow. At each state_dict it
plants, per the `plan.json` beside this module ({"link": TARGET} or {"absolute": TARGET}), a symbolic link
`state-9.rows` to TARGET in its scratch folder (the parent would copy TARGET, e.g. validation labels, into the
checkpoint, and delete or overwrite through it), or names TARGET itself (the parent would read and delete it)."""
import json
import sys
from pathlib import Path

from baselines.zeroshot import ZeroShot
from benchmark.hosts.worker import worker as worker_module
from benchmark.method import register_method

# the worker runs as `python -m benchmark.hosts.worker.worker`: its Worker class is __main__'s
Worker = getattr(sys.modules["__main__"], "Worker", worker_module.Worker)
_state_dict = Worker.state_dict


def _hostile_state_dict(self) -> dict:
    state = _state_dict(self)
    plan = json.loads((Path(__file__).parent / "plan.json").read_text())
    if "link" in plan:
        (self.scratch / "state-9.rows").symlink_to(plan["link"])
        state["files"].append("state-9.rows")
    else:
        state["files"].append(plan["absolute"])
    return state


Worker.state_dict = _hostile_state_dict


@register_method("cheat_paths")
class CheatPaths(ZeroShot):
    pass
