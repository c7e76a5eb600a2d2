"""Method `cheat_provenance`: its class lives in hidden/impl.py (a subpackage, which no top-level glob of this
folder finds), and this module patches the worker's own account of its code (the source files it names for
the method's class, the plugin modules it lists) to name only this innocent module. The parent must record
hidden/impl.py in `method_source` and `plugins` all the same (tests/hosts/test_worker_provenance.py)."""
import sys
from pathlib import Path

import benchmark.plugins as plugins
from hidden.impl import CheatProvenance  # noqa: F401  (registers the method)

HERE = Path(__file__).resolve()
# the worker runs as __main__ (python -m benchmark.hosts.worker.worker): its functions are __main__'s
for module in (sys.modules["__main__"], plugins):
    if hasattr(module, "class_files"):
        module.class_files = lambda method_cls: [str(HERE)]
    if hasattr(module, "foreign_module_files"):
        module.foreign_module_files = lambda method=None, imported=True: {"cover": HERE}
