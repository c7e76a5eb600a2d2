"""Where methods come from, and which code outside the repository a run imported.

`load_methods()` imports every module that registers a method, so each `@register_method` runs before the
registry is read (`load_foreign()` imports the foreign ones only, for the stream metrics and report formats they
may register):
- the project's own: every module under baselines/ and methods/ (a new method is one module dropped into
  methods/ plus its YAML in configs/method/: nothing to edit here);
- installed packages: each entry point of the group `covseg_bench.plugins` names a module to import (in the
  package's pyproject.toml: `[project.entry-points."covseg_bench.plugins"] mine = "my_package.my_method"`,
  the entry point named after the method it registers); a `configs/` folder beside that module holds its YAML
  (configs/method/<name>.yaml, ...). A run imports only its own method's entry points (`method_entry_points`:
  those named after it, else those whose configs/ hold its YAML): a built-in run imports none;
- a folder of one's own: every folder of $COVSEG_PATH (os.pathsep-separated) is put on sys.path and each of
  its top-level `*.py` modules imported, whatever the method (the user put it there for the run).
The last two are foreign code: `benchmark.provenance.plugin_records(method)` lists every module of theirs that a
run of `method` imports (module, path, sha256) for the manifest, and under `isolate=true` only the method's
worker process imports them (the parent calls `load_methods(method, foreign=False)`); `plugin_config_folders`
finds the `configs/` folders of all of them without importing anything (Hydra's search path).
"""
from __future__ import annotations

import importlib
import importlib.machinery
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


def _module(entry_point) -> str:
    return entry_point.value.split(":")[0]


def _entry_point_root(module: str) -> Path | None:
    """The folder of an entry point module's top-level package (or its file, for a plain module), found
    without importing anything (find_spec of a top-level name runs no code of it)."""
    spec = importlib.util.find_spec(module.split(".")[0])
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).resolve().parent if spec.submodule_search_locations else Path(spec.origin).resolve()


def _config_folder(entry_point) -> Path | None:
    """The `configs/` folder beside an entry point's top-level package (or module file), or None."""
    root = _entry_point_root(_module(entry_point))
    return None if root is None else (root if root.is_dir() else root.parent) / "configs"


def plugin_config_folders() -> list[Path]:
    """The `configs/` folders of every $COVSEG_PATH folder and beside every entry point's module."""
    folders = [folder / "configs" for folder in plugin_folders()]
    return folders + [folder for folder in map(_config_folder, _entry_points()) if folder is not None]


def method_entry_points(method: str | None) -> list:
    """The entry points a run of `method` imports: those named `method` (as `covseg new-method` names them),
    else those whose configs/ folder holds method/<method>.yaml (found on disk, nothing imported); all of
    them for None. A method of the project's own or of $COVSEG_PATH gets [] (unless a package claims its name)."""
    every = list(_entry_points())
    if method is None:
        return every
    named = [entry_point for entry_point in every if entry_point.name == method]
    if named:
        return named
    configs = [(entry_point, _config_folder(entry_point)) for entry_point in every]
    return [entry_point for entry_point, folder in configs
            if folder is not None and (folder / "method" / f"{method}.yaml").is_file()]


def foreign_roots(method: str | None) -> list[Path]:
    """Where the foreign code of a run of `method` lives: the $COVSEG_PATH folders and its entry points'
    packages (or module files); every entry point's for None."""
    roots = [*plugin_folders(), *(_entry_point_root(_module(e)) for e in method_entry_points(method))]
    return list(dict.fromkeys(root for root in roots if root is not None))


def is_under(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)

# the Hydra plugins the harness itself uses (hydra/launcher=joblib, the submitit launchers)
HARNESS_HYDRA_PLUGINS = ("hydra_plugins.hydra_joblib_launcher", "hydra_plugins.hydra_submitit_launcher")



def foreign_module_files(method: str | None, imported: bool = True) -> dict[str, Path]:
    """{module name: file} of the foreign code a run of `method` imports: the top-level modules of the
    $COVSEG_PATH folders and its entry points' modules (found on disk, nothing imported), and with `imported`
    every module in sys.modules whose file lies under one of their roots (what they imported from their own
    folders; another package's modules imported earlier by this process are not this run's)."""
    files: dict[str, Path] = {}
    for folder in plugin_folders():
        files.update({module.stem: module.resolve() for module in sorted(folder.glob("*.py"))})
    for entry_point in method_entry_points(method):
        module = _module(entry_point)
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
        roots = foreign_roots(method)
        for name, module in list(sys.modules.items()):
            origin = getattr(module, "__file__", None)
            if origin and is_under(Path(origin).resolve(), roots):
                files[name] = Path(origin).resolve()
    files.update(foreign_hydra_plugins())
    return files


def foreign_files_on_disk(method: str | None) -> dict[str, Path]:
    """{module name: file} of every file Python could import from the foreign code of a run of `method` (each
    source, bytecode or extension file under the $COVSEG_PATH folders and its entry points' packages, but
    caches in __pycache__), found on disk by this process: what an isolated run records, whatever its worker
    says it imported. Plus the foreign `hydra_plugins` modules this process imported."""
    files: dict[str, Path] = {}
    trees = [(folder, folder) for folder in plugin_folders()]  # (where names start, what to walk)
    for entry_point in method_entry_points(method):
        root = _entry_point_root(_module(entry_point))
        if root is not None:
            trees.append((root.parent, root))
    for base, tree in trees:
        for path in _importable_files(tree):
            relative = path.relative_to(base)
            name = ".".join((*relative.parts[:-1], _module_stem(path.name))).removesuffix(".__init__")
            files[name if name not in files else relative.as_posix()] = path
    files.update(foreign_hydra_plugins())
    return files


def _module_stem(file_name: str) -> str:
    suffix = max((s for s in importlib.machinery.all_suffixes() if file_name.endswith(s)), key=len)
    return file_name[:-len(suffix)]


def _importable_files(tree: Path) -> list[Path]:
    """The regular files (symbolic links to one included) under `tree`, or `tree` itself, whose suffix Python
    imports (.py, .pyc, extensions), sorted; folder links are not followed, __pycache__ is left out."""
    if tree.is_file():
        return [tree]
    found = []
    for folder, subfolders, names in os.walk(tree):
        subfolders[:] = sorted(name for name in subfolders if name != "__pycache__")
        found += [Path(folder) / name for name in names if name.endswith(tuple(importlib.machinery.all_suffixes()))]
    return sorted(path for path in found if path.is_file())


def foreign_hydra_plugins() -> dict[str, Path]:
    """The `hydra_plugins.*` modules this process imported (Hydra imports every one on sys.path when it
    starts) other than the launchers the harness uses: foreign code that ran in the parent."""
    files = {}
    for name, module in list(sys.modules.items()):
        top = ".".join(name.split(".")[:2])
        origin = getattr(module, "__file__", None)
        if name.startswith("hydra_plugins.") and top not in HARNESS_HYDRA_PLUGINS and origin:
            files[name] = Path(origin).resolve()
    return files


def _import(name: str, where: str) -> None:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        raise UserError(f"cannot import the plugin module '{name}' ({where}): {exc}") from None


def load_methods(method: str | None = None, foreign: bool = True) -> None:
    """Register the project's own methods, and with `foreign` those of $COVSEG_PATH and of the entry points a
    run of `method` imports (`method_entry_points`: every entry point for None, as the diagnosis of a method
    without its YAML wants). Importing a module twice is a no-op: calling this again costs a walk over the packages."""
    import baselines
    import methods

    for package in (baselines, methods):
        for module in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            importlib.import_module(module.name)
    if foreign:
        load_foreign(method)


def load_foreign(method: str | None = None) -> None:
    """Import the foreign modules: the entry points a run of `method` imports (`method_entry_points`: every one
    for None) and every top-level module of the $COVSEG_PATH folders (they may register methods, stream metrics
    and report formats)."""
    for entry_point in method_entry_points(method):
        _import(_module(entry_point), f"entry point {entry_point.name} of group {PLUGIN_GROUP}")
    for folder in plugin_folders():
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
        for module in sorted(folder.glob("*.py")):
            _import(module.stem, f"from COVSEG_PATH folder {folder}")
