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

import baselines
import methods
from benchmark.config import PLUGIN_GROUP, plugin_folders
from benchmark.errors import UserError

for package in (baselines, methods):
    for module in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
        importlib.import_module(module.name)


def _import(name: str, where: str) -> None:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        raise UserError(f"cannot import the method plugin '{name}' ({where}): {exc}") from None


def _entry_points():
    from importlib.metadata import entry_points

    return entry_points(group=PLUGIN_GROUP)


for entry_point in _entry_points():
    _import(entry_point.value.split(":")[0], f"entry point {entry_point.name} of group {PLUGIN_GROUP}")
for folder in plugin_folders():
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    for module in sorted(folder.glob("*.py")):
        _import(module.stem, f"from COVSEG_PATH folder {folder}")
