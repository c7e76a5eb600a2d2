"""One generic registry, one instance per concept (methods, streams, models, stream metrics, report formats).

Modelled on lm-evaluation-harness' registry: typed entries, duplicate names refused, near matches
suggested on a failed lookup. No parent chains: a name maps to exactly one entry.
"""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from benchmark.errors import UserError

T = TypeVar("T")


def closest(name: str, candidates: list[str] | tuple[str, ...], n: int = 3) -> list[str]:
    """The candidates closest to `name` (difflib ratio, then substring matches)."""
    close = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)
    return close or [c for c in candidates if name and (name in c or c in name)][:n]


def suggest(name: str, candidates: list[str] | tuple[str, ...], prefix: str = "") -> str:
    """' (did you mean: a, b?)' for the closest candidates, or '' when nothing is close."""
    close = closest(name, candidates)
    return f" (did you mean: {', '.join(prefix + c for c in close)}?)" if close else ""


class Registry(Generic[T]):
    """Maps names to entries of one kind; `base` (optional) is checked on registration."""

    def __init__(self, kind: str, base: type | None = None) -> None:
        self.kind = kind
        self.base = base
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T | None = None) -> Callable[[T], T] | T:
        """`REG.register("x", obj)` or as a decorator `@REG.register("x")`."""
        if entry is not None:
            return self._add(name, entry)

        def decorator(obj: T) -> T:
            return self._add(name, obj)

        return decorator

    def _add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        if self.base is not None and not (isinstance(entry, type) and issubclass(entry, self.base)):
            raise TypeError(f"{self.kind} '{name}' must be a subclass of {self.base.__name__}, got {entry!r}")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        if name not in self._entries:
            available = ", ".join(sorted(self._entries)) or "none"
            raise UserError(
                f"unknown {self.kind} '{name}'{suggest(name, sorted(self._entries))}; available: {available}"
            )
        return self._entries[name]

    def names(self, filter: str | None = None) -> list[str]:
        """Registered names, sorted; `filter` keeps names containing it (timm's list_models style)."""
        return sorted(n for n in self._entries if filter is None or filter in n)

    def entries(self) -> list[T]:
        """The entries in the order they were registered (where order is meaningful: columns, summary keys)."""
        return list(self._entries.values())

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
