"""Bytes a method actually holds: every tensor and array reachable from an object graph, each storage counted
once (views, and several references to one tensor, share their storage).

A method whose state lives in objects it does not define (avalanche's plugins: replay buffers, EWC
importances, LwF's previous model, GEM's memory) reports `reachable_bytes` of them in `memory_bytes`, so the
figure follows what the library keeps rather than what we believe it keeps.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch

# leaves that hold no tensor: not worth walking
_ATOMS = (str, bytes, int, float, bool, complex, type(None), type, torch.dtype, torch.device)


def _storage_key(value: torch.Tensor | np.ndarray) -> tuple[str, int, int]:
    """Identity and size of the memory behind a tensor or array (the base buffer of a view)."""
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        return "torch", storage.data_ptr(), storage.nbytes()
    base = value
    while isinstance(base.base, np.ndarray):
        base = base.base
    return "numpy", base.__array_interface__["data"][0], base.nbytes


def reachable_bytes(roots: Iterable[Any], exclude: Iterable[Any] = ()) -> int:
    """Bytes of the distinct tensor storages and array buffers reachable from `roots` through attributes,
    containers and modules, not counting anything reachable only through the objects in `exclude` (the live
    model, the shared segmenter), nor those objects' own tensors."""
    excluded = {id(obj) for obj in exclude}
    excluded_storages = {_storage_key(t)[:2] for obj in exclude if isinstance(obj, torch.nn.Module)
                         for t in (*obj.parameters(), *obj.buffers())}
    seen_objects: set[int] = set()
    storages: dict[tuple[str, int], int] = {}
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in excluded or id(obj) in seen_objects or isinstance(obj, _ATOMS):
            continue
        seen_objects.add(id(obj))
        if isinstance(obj, (torch.Tensor, np.ndarray)):
            kind, pointer, size = _storage_key(obj)
            if (kind, pointer) not in excluded_storages and size:
                storages[(kind, pointer)] = size
            continue
        if isinstance(obj, dict):
            stack += obj.values()
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack += obj
        elif isinstance(obj, torch.nn.Module):
            stack += [*obj.parameters(), *obj.buffers(), *vars(obj).values()]
        else:
            stack += getattr(obj, "__dict__", {}).values()
            slots = getattr(type(obj), "__slots__", ())
            stack += [getattr(obj, slot) for slot in ((slots,) if isinstance(slots, str) else slots)
                      if hasattr(obj, slot)]
    return sum(storages.values())
