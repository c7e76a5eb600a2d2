"""The code of method `cheat_provenance` (see ../cover.py): zero-shot, under a name the worker hides."""
from baselines.zeroshot import ZeroShot
from benchmark.method import register_method


@register_method("cheat_provenance")
class CheatProvenance(ZeroShot):
    pass
