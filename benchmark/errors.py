"""Errors the CLI reports without a Python traceback (unless `debug=true`). `UserError`: the user's input is
wrong, printed as one line (exit 2). `MethodError`: a method's own code raised; printed as one line and the
method's own frames (exit 1), the same whether the method ran in this process or in its worker. Anything else
is a bug of the harness and keeps its traceback."""
from __future__ import annotations

import traceback
import unicodedata
from dataclasses import dataclass

MAX_FRAMES = 100  # the innermost frames a MethodError keeps (a worker's report is untrusted text)
TEXT_LIMITS = {"file": 300, "name": 100, "code": 200, "kind": 100, "message": 500}  # characters


class UserError(Exception):
    """A mistake in the user's input (config key, value, file, data root). The message names it and says
    what to do."""


class DataError(UserError):
    """A dataset file that cannot be used: missing, corrupt, or inconsistent with its annotation."""


def clean_text(text: str, limit: int) -> str:
    """`text` without control or format characters (terminal escapes, bidi overrides), at most `limit` long."""
    text = "".join(c for c in str(text) if unicodedata.category(c) not in ("Cc", "Cf"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Frame:
    """One frame of a traceback, as text."""

    file: str
    line: int
    name: str
    code: str  # the source line, stripped ("" when unknown)
    own: bool  # in the method's own code: not the harness's (benchmark/, streams/), the stdlib's or a library's

    @classmethod
    def of(cls, file: str, line: int, name: str, code: str, own: bool) -> "Frame":
        return cls(clean_text(file, TEXT_LIMITS["file"]), int(line), clean_text(name, TEXT_LIMITS["name"]),
                   clean_text(code.strip(), TEXT_LIMITS["code"]), bool(own))

    def lines(self) -> list[str]:
        return [f'  File "{self.file}", line {self.line}, in {self.name}', *([f"    {self.code}"] if self.code else [])]


class MethodError(Exception):
    """The method's code raised `kind: message` during `call` (learn, predict, state_dict, ..., __init__) at
    `step` (-1: the initial evaluation; None: not during a run's step). `frames`: the exception's frames where
    the method ran (in this process, or in its worker: `in_worker`), innermost last; the `own` ones are the
    method's."""

    def __init__(self, method: str, call: str, kind: str, message: str, frames: list[Frame],
                 step: int | None = None, in_worker: bool = False) -> None:
        self.method, self.call, self.step, self.in_worker = method, call, step, in_worker
        self.kind = clean_text(kind, TEXT_LIMITS["kind"])
        lines = str(message).strip().splitlines()
        self.message = clean_text(lines[0] if lines else "", TEXT_LIMITS["message"])
        self.frames = list(frames)[-MAX_FRAMES:]
        super().__init__()

    def __str__(self) -> str:
        where = "" if self.step is None else " (initial evaluation)" if self.step < 0 else f" (step {self.step})"
        what = f"{self.kind}: {self.message}" if self.message else self.kind
        return f"method {self.method} failed in {self.call}{where}: {what}"

    def report(self, debug: bool = False) -> str:
        """`error: <one line>`, then the method's own frames; with `debug`, every frame: the harness's from the
        command down to the call of the method (this exception's traceback), then the method's side."""
        lines = [f"error: {self}"]
        if not debug:
            own = [line for frame in self.frames if frame.own for line in frame.lines()]
            return "\n".join([*lines, *own, "(the method's own frames, innermost last; debug=true prints every frame)"])
        harness = [Frame.of(f.filename, f.lineno or 0, f.name, f.line or "", False)
                   for f in traceback.extract_tb(self.__traceback__)]
        if harness and self.frames and (harness[-1].file, harness[-1].name) == (self.frames[0].file, self.frames[0].name):
            harness = harness[:-1]  # the frame that called the method: listed with the method's side
        lines.append("Traceback (most recent call last):")
        lines += [line for frame in harness for line in frame.lines()]
        if self.in_worker:
            lines.append("  -- in the method's worker process (isolate=true) --")
        lines += [line for frame in self.frames for line in frame.lines()]
        return "\n".join([*lines, f"{self.kind}: {self.message}" if self.message else self.kind])
