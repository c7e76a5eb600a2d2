"""`call_method`: every call of a method's code (its construction, learn, predict, state_dict, ...) goes through
it, in this process and in a method's worker alike; an exception the method raises becomes a `MethodError`
with its frames as text, each marked as the method's own or not (the harness's benchmark/ and streams/, the
standard library, installed libraries such as torch)."""
from __future__ import annotations

import site
import sys
import sysconfig
import traceback
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from benchmark.errors import Frame, MethodError, UserError
from benchmark.provenance import REPO_ROOT

HARNESS_PACKAGES = ("benchmark", "streams")
BUILT_IN_PACKAGES = ("baselines", "methods")  # the project's methods: their files are the method's own


@lru_cache(maxsize=1)
def library_folders() -> tuple[Path, ...]:
    """The standard library's and the installed packages' folders."""
    paths = sysconfig.get_paths()
    folders = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    folders.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    folders.add(site.getusersitepackages())
    return tuple(Path(folder).resolve() for folder in folders)


def package_folders(method_cls: type) -> list[Path]:
    """The folders (or the single file) of the top-level package the method's class is defined in."""
    top = sys.modules.get(method_cls.__module__.split(".")[0])
    file = getattr(top, "__file__", None)
    if file:
        path = Path(file).resolve()
        return [path.parent if path.name == "__init__.py" else path]
    return [Path(location).resolve() for location in getattr(top, "__path__", [])]  # a namespace package


def _under(path: Path, folders) -> bool:
    return any(path == folder or folder in path.parents for folder in folders)


def is_own(file: str, method_cls: type) -> bool:
    """True for a file of the method's package or of the project's methods; else for a file outside the
    harness, the standard library and the installed libraries (the user's own helper modules)."""
    if file.startswith("<"):  # <frozen runpy>, <string>
        return False
    path = Path(file).resolve()
    if _under(path, [*package_folders(method_cls), *(REPO_ROOT / name for name in BUILT_IN_PACKAGES)]):
        return True
    return not _under(path, [*(REPO_ROOT / name for name in HARNESS_PACKAGES), *library_folders()])


def method_error(exc: BaseException, name: str, call: str, method_cls: type) -> MethodError:
    """`exc`, raised by method `name` (of class `method_cls`) during `call`, as a MethodError."""
    frames = [Frame.of(f.filename, f.lineno or 0, f.name, f.line or "", is_own(f.filename, method_cls))
              for f in traceback.extract_tb(exc.__traceback__)]
    return MethodError(name, call, type(exc).__name__, str(exc), frames)


def call_method(name: str, call: str, method_cls: type, function: Callable[..., Any], *args: Any,
                **kwargs: Any) -> Any:
    """`function(*args, **kwargs)`, the method's code for `call`; an Exception it raises (a UserError excepted: it is
    already the method's one-line message to the user) becomes a MethodError."""
    try:
        return function(*args, **kwargs)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001  (the method's code: anything may come out of it)
        raise method_error(exc, name, call, method_cls) from exc
