"""Why `method=NAME` finds no configs/method/NAME.yaml although a plugin registered NAME: the module that
registered it, where that module came from (an entry point or a $COVSEG_PATH folder) and the YAML file expected
beside it. Only asked on the error path of an unknown method, after the plugins were imported."""
from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path


def missing_config(method: str) -> str | None:
    """One line for a plugin method without its YAML, or None when no plugin registered `method`."""
    from benchmark.method import METHODS
    from benchmark.plugins import PLUGIN_GROUP, load_methods, plugin_folders

    load_methods()
    if method not in METHODS:
        return None
    module = METHODS.get(method).__module__
    top = module.split(".")[0]
    if top in ("baselines", "methods"):
        return None  # the project's own: its YAML belongs to configs/ of the checkout
    source = Path(getattr(sys.modules[top], "__file__", None) or "").resolve()
    folder = next((f for f in plugin_folders() if source.parent == f), None)
    if folder is not None:
        where, configs = f"from COVSEG_PATH folder {folder}", folder / "configs"
    else:
        entry = next((e for e in entry_points(group=PLUGIN_GROUP) if e.value.split(":")[0].split(".")[0] == top), None)
        where = f"entry point {entry.name} of group {PLUGIN_GROUP}" if entry is not None else "imported by a plugin"
        configs = source.parent / "configs"
    return (f"method '{method}' is registered by module {module} ({where}), but its config "
            f"{configs / 'method' / (method + '.yaml')} is missing: an installed package ships it only when its "
            f"pyproject.toml lists it in [tool.setuptools.package-data] (e.g. `{top} = [\"configs/*/*.yaml\"]`; "
            f"`covseg new-method NAME` scaffolds such a package)")
