"""Where methods come from, and which code outside the repository a run imported.

`load_methods()` imports every module that registers a method, so each `@register_method` runs before the
registry is read:
- the project's own: every module under baselines/ and methods/ (a new method is one module dropped into
  methods/ plus its YAML in configs/method/: nothing to edit here);
- installed packages: each entry point of the group `covseg_bench.plugins` names a module to import (in the
  package's pyproject.toml: `[project.entry-points."covseg_bench.plugins"] mine = "my_package.my_method"`);
  a `configs/` folder beside that module holds its YAML (configs/method/<name>.yaml, ...);
- a folder of one's own: every folder of $COVSEG_PATH (os.pathsep-separated) is put on sys.path and each of
  its top-level `*.py` modules imported; its `configs/` folder holds the YAML.
The last two are foreign code: `benchmark.provenance.plugin_records()` lists every module of theirs (module,
path, sha256) for the manifest, and under `isolate=true` only the method's worker process imports them (the
parent calls `load_methods(foreign=False)`); `plugin_config_folders` finds their `configs/` folders without
importing anything.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from pathlib import Path

from benchmark.errors import UserError

PLUGIN_GROUP = "covseg_bench.plugins"  # entry point group of installed packages that add methods
PLUGIN_PATH_ENV = "COVSEG_PATH"  # folders of one's own methods and configs, os.pathsep-separated


def plugin_folders() -> list[Path]:
    """The folders of $COVSEG_PATH (each: top-level *.py modules and a configs/ folder)."""
    return [Path(p).expanduser().resolve() for p in os.environ.get(PLUGIN_PATH_ENV, "").split(os.pathsep) if p]


def _entry_points():
    from importlib.metadata import entry_points

    return entry_points(group=PLUGIN_GROUP)


def _entry_point_root(module: str) -> Path | None:
    """The folder of an entry point module's top-level package (or its file, for a plain module), found
    without importing anything (find_spec of a top-level name runs no code of it)."""
    spec = importlib.util.find_spec(module.split(".")[0])
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).resolve().parent if spec.submodule_search_locations else Path(spec.origin).resolve()


def plugin_config_folders() -> list[Path]:
    """The `configs/` folders of every $COVSEG_PATH folder and beside every entry point's module."""
    folders = [folder / "configs" for folder in plugin_folders()]
    for entry_point in _entry_points():
        root = _entry_point_root(entry_point.value.split(":")[0])
        if root is not None:
            folders.append((root if root.is_dir() else root.parent) / "configs")
    return folders


def foreign_roots() -> list[Path]:
    """Where foreign code lives: the $COVSEG_PATH folders and the entry points' packages (or module files)."""
    roots = [*plugin_folders(), *(_entry_point_root(e.value.split(":")[0]) for e in _entry_points())]
    return list(dict.fromkeys(root for root in roots if root is not None))


def is_under(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def foreign_module_files(imported: bool = True) -> dict[str, Path]:
    """{module name: file} of the foreign code: the top-level modules of the $COVSEG_PATH folders and the
    entry points' modules (found on disk, nothing imported), and with `imported` every module in sys.modules
    whose file lies under a foreign root (what those modules imported from their own folders)."""
    files: dict[str, Path] = {}
    for folder in plugin_folders():
        files.update({module.stem: module.resolve() for module in sorted(folder.glob("*.py"))})
    for entry_point in _entry_points():
        module = entry_point.value.split(":")[0]
        root = _entry_point_root(module)
        if root is None:
            continue
        if root.is_file():
            files[module] = root
            continue
        path = root.joinpath(*module.split(".")[1:])
        for candidate in (path / "__init__.py", path.with_suffix(".py")):
            if candidate.is_file():
                files[module] = candidate
                break
    if imported:
        roots = foreign_roots()
        for name, module in list(sys.modules.items()):
            origin = getattr(module, "__file__", None)
            if origin and is_under(Path(origin).resolve(), roots):
                files[name] = Path(origin).resolve()
    return files


def _import(name: str, where: str) -> None:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        raise UserError(f"cannot import the method plugin '{name}' ({where}): {exc}") from None


def load_methods(foreign: bool = True) -> None:
    """Register every method: the project's own, and with `foreign` those of entry points and $COVSEG_PATH
    (importing a module twice is a no-op, so calling this again costs a walk over the packages only)."""
    import baselines
    import methods

    for package in (baselines, methods):
        for module in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            importlib.import_module(module.name)
    if not foreign:
        return
    for entry_point in _entry_points():
        _import(entry_point.value.split(":")[0], f"entry point {entry_point.name} of group {PLUGIN_GROUP}")
    for folder in plugin_folders():
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
        for module in sorted(folder.glob("*.py")):
            _import(module.stem, f"from COVSEG_PATH folder {folder}")
