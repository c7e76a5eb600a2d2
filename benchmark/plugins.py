"""Imports every module that registers a method, so each `@register_method` runs before the registry is read:

- the project's own: every module under baselines/ and methods/ (a new method is one module dropped into
  methods/ plus its YAML in configs/method/: nothing to edit here);
- installed packages: each entry point of the group `covseg_bench.plugins` names a module to import (in the
  package's pyproject.toml: `[project.entry-points."covseg_bench.plugins"] mine = "my_package.my_method"`);
  a `configs/` folder beside that module holds its YAML (configs/method/<name>.yaml, ...);
- a folder of one's own: every folder of $COVSEG_PATH (os.pathsep-separated) is put on sys.path and each of
  its top-level `*.py` modules imported; its `configs/` folder holds the YAML.
`benchmark.config.config_search_path` finds those `configs/` folders (without importing anything).
"""
import importlib
import pkgutil
import sys
from pathlib import Path

import baselines
import methods
from benchmark.config import PLUGIN_GROUP, plugin_folders
from benchmark.errors import UserError
from benchmark.method import METHODS

for package in (baselines, methods):
    for module in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
        importlib.import_module(module.name)


# method name -> (module that registered it, where that module came from, the configs/ folder its YAML belongs in):
# what `missing_config` tells about a plugin method whose configs/method/<name>.yaml is not there
PLUGIN_METHODS: dict[str, tuple[str, str, Path]] = {}


def _import(name: str, where: str, configs: Path | None = None) -> None:
    before = set(METHODS.names())
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise UserError(f"cannot import the method plugin '{name}' ({where}): {exc}") from None
    top = sys.modules[name.split(".")[0]]
    folder = configs or Path(getattr(top, "__file__", None) or module.__file__).parent / "configs"
    for method in set(METHODS.names()) - before:
        PLUGIN_METHODS[method] = (name, where, folder)


def missing_config(method: str) -> str | None:
    """Why `method=NAME` finds no configs/method/NAME.yaml although a plugin registered NAME (None when none did):
    the module, where it came from and the YAML path expected beside it."""
    if method not in PLUGIN_METHODS:
        return None
    module, where, folder = PLUGIN_METHODS[method]
    return (f"method '{method}' is registered by module {module} ({where}), but its config "
            f"{folder / 'method' / (method + '.yaml')} is missing: an installed package ships it only when its "
            f"pyproject.toml lists it in [tool.setuptools.package-data] (e.g. `{module.split('.')[0]} = "
            f"[\"configs/*/*.yaml\"]`; `covseg new-method NAME` scaffolds such a package)")


def _entry_points():
    from importlib.metadata import entry_points

    return entry_points(group=PLUGIN_GROUP)


for entry_point in _entry_points():
    _import(entry_point.value.split(":")[0], f"entry point {entry_point.name} of group {PLUGIN_GROUP}")
for folder in plugin_folders():
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    for module in sorted(folder.glob("*.py")):
        _import(module.stem, f"from COVSEG_PATH folder {folder}", folder / "configs")
