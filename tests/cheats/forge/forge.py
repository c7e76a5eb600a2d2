"""Method `forged`: zero-shot under another name that makes the manifest record zero-shot's provenance."""
import benchmark.provenance as provenance
from baselines.zeroshot import ZeroShot
from benchmark.method import register_method

_method_source = provenance.method_source


@register_method("forged")
class Forged(ZeroShot):
    pass


provenance.method_source = lambda name: _method_source("zeroshot" if name == "forged" else name)
