"""The parent's checks of what a method's worker replies: each reply must have the shape its request asks for
(`check(reply, expected, where)`), and predictions must be label maps of the image's size holding class ids
of the dataset, or the run fails in one line naming the field and what was expected."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from benchmark.data.types import ImageInput, SegmentInfo
from benchmark.errors import UserError
from benchmark.method import SegmentationOutput


class ReplyError(UserError):
    """A worker's reply is not what its request asks for."""


def _is_count(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _is_counter(value: Any) -> bool:
    return value is None or isinstance(value, str) or _is_count(value)


def _is_frame(value: Any) -> bool:
    return (isinstance(value, dict) and set(value) == {"file", "line", "name", "code", "own"}
            and all(isinstance(value[key], str) for key in ("file", "name", "code"))
            and _is_count(value["line"]) and isinstance(value["own"], bool))


# what each kind of field must be: a test and the words for it
KINDS = {
    "count": (_is_count, "a non-negative integer"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bytes": (lambda v: isinstance(v, bytes), "bytes"),
    "dict": (lambda v: isinstance(v, dict), "a mapping"),
    "none": (lambda v: v is None, "nothing (None)"),
    "str list": (lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v), "a list of strings"),
    "str map": (lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(i, str)
                                                      for k, i in v.items()), "a mapping of strings to strings"),
    "counters": (lambda v: isinstance(v, dict) and all(isinstance(k, str) and _is_counter(i) for k, i in v.items()),
                 "a mapping of names to non-negative integers, strings or None"),
    "metric values": (lambda v: isinstance(v, dict) and all(isinstance(k, str) and _is_number(i) for k, i in v.items()),
                      "a mapping of names to numbers"),
    "frames": (lambda v: isinstance(v, list) and all(_is_frame(i) for i in v),
               "a list of frames, each a mapping of file, name, code (strings), line (a count) and own (a bool)"),
}


def check(value: Any, expected: str | dict, where: str) -> Any:
    """`value` when it is of kind `expected` (a KINDS name, or {key: kind} for a mapping with those keys);
    otherwise ReplyError naming `where`."""
    if isinstance(expected, dict):
        if not isinstance(value, dict):
            raise ReplyError(f"{where}: expected a mapping with keys {', '.join(expected)}, "
                             f"got {type(value).__name__}")
        for key, kind in expected.items():
            if key not in value:
                raise ReplyError(f"{where}: the key '{key}' is missing")
            check(value[key], kind, f"{where}['{key}']")
        return value
    test, words = KINDS[expected]
    if not test(value):
        raise ReplyError(f"{where}: expected {words}, got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _label_map(value: Any, shape: tuple, num_classes: int | None, where: str) -> None:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iu":
        got = f"{value.dtype} array" if isinstance(value, np.ndarray) else _shown(value)
        raise ReplyError(f"{where}: expected an integer array, got {got}")
    if value.shape != shape:
        raise ReplyError(f"{where}: expected shape {shape} (the image's), got {value.shape}")
    if num_classes is not None and value.size and (value.min() < 0 or value.max() >= num_classes):
        bad = value.min() if value.min() < 0 else value.max()
        raise ReplyError(f"{where}: class id {bad} is outside the dataset's 0..{num_classes - 1}")


def check_outputs(outputs: Any, images: list[ImageInput], num_classes: int, where: str) -> list[SegmentationOutput]:
    """`outputs` when it is one SegmentationOutput per image, each a label map of its image's size with class
    ids of the dataset (and, where given, a panoptic map, its segments and finite scores)."""
    if not isinstance(outputs, list) or len(outputs) != len(images):
        got = f"{len(outputs)} outputs" if isinstance(outputs, list) else _shown(outputs)
        raise ReplyError(f"{where}: expected a list of {len(images)} SegmentationOutput, got {got}")
    for position, (output, image) in enumerate(zip(outputs, images)):
        field = f"{where}[{position}]"
        if not isinstance(output, SegmentationOutput):
            raise ReplyError(f"{field}: expected a SegmentationOutput, got {_shown(output)}")
        shape = tuple(image.image.shape[:2])
        _label_map(output.sem_seg, shape, num_classes, f"{field}.sem_seg")
        if output.pan_seg is not None:
            _label_map(output.pan_seg, shape, None, f"{field}.pan_seg")
        if not isinstance(output.segments, list) or not all(
                isinstance(s, SegmentInfo) and _is_count(s.id) and _is_count(s.category_id)
                and s.category_id < num_classes for s in output.segments):
            raise ReplyError(f"{field}.segments: expected a list of SegmentInfo with class ids of the dataset")
        if not isinstance(output.scores, list) or not all(
                isinstance(s, (int, float, np.floating)) and math.isfinite(s) for s in output.scores):
            raise ReplyError(f"{field}.scores: expected a list of finite numbers")
    return outputs
