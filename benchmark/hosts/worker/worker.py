"""The method's process under isolate=true: `python -m benchmark.hosts.worker.worker FD`, FD its end of the
socket (with sandbox=true, `python -m benchmark.confine FD` confines the process first, then runs this). It
imports the plugins, builds the method (an InProcessHost here), and answers the parent's requests (the
protocol: benchmark/hosts/worker/__init__.py)."""
from __future__ import annotations

import dataclasses
import inspect
import pickle
import sys
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from benchmark.config import check_method_config
from benchmark.data.types import ImageInput, Vocabulary
from benchmark.errors import MethodError, UserError
from benchmark.evaluation.stream_metrics import StreamScores, stream_metrics
from benchmark.hosts.build import build_method
from benchmark.hosts.in_process import InProcessHost
from benchmark.hosts.worker.channel import Channel
from benchmark.method import StepData
from benchmark.plugins import load_methods
from benchmark.progress import Progress
from benchmark.run.checkpoint import externalise, internalise, rng_states, set_rng_states


def portable_rng_states() -> dict:
    """The RNG states with torch's as a numpy array (the parent accepts no torch objects from a worker)."""
    states = rng_states()
    return {**states, "torch": states["torch"].numpy()}


def set_portable_rng_states(states: dict) -> None:
    set_rng_states({**states, "torch": torch.from_numpy(np.asarray(states["torch"]))})


def class_files(method_cls: type) -> list[str]:
    """The source files of the method's class and its bases (the parent decides which to record)."""
    files = []
    for klass in method_cls.__mro__:
        try:
            files.append(inspect.getsourcefile(klass))
        except TypeError:  # builtins (object)
            continue
    return [str(Path(f).resolve()) for f in files if f]


class ParentGone(BaseException):
    """The socket to the parent broke (the parent ended, or was interrupted): the worker just exits."""


def talk(channel: Channel, message: Any = None, receive: bool = False) -> Any:
    """Send `message` (unless None), then receive one when `receive`; a broken socket raises ParentGone."""
    try:
        if message is not None:
            channel.send(message)
        return channel.recv() if receive else None
    except (EOFError, OSError):
        raise ParentGone from None


class Worker:
    def __init__(self, channel: Channel, setup: dict) -> None:
        self.channel = channel
        self.scratch = Path(setup["scratch"])
        self.progress = Progress(quiet=setup["quiet"])
        torch.set_num_threads(setup["threads"])
        name = setup["method"]["name"]
        load_methods(name)  # the method's plugins: here, never in the parent
        checked = check_method_config(name, OmegaConf.create(setup["method"]))
        set_portable_rng_states(setup["rng"])  # where the parent's RNG stood: as if the method were built there
        cfg = OmegaConf.create({"method": checked, "model": setup["model"], "seed": setup["seed"]})
        self.host = InProcessHost(build_method(cfg, setup["num_classes"], setup["device"]), name)
        method_cls = type(self.host.method)
        self.started = {"method": OmegaConf.to_container(checked), "module": method_cls.__module__,
                        "class": method_cls.__qualname__, "files": class_files(method_cls)}

    def learn(self, step: dict) -> None:
        def load(position: int):
            _, sample = talk(self.channel, ("sample", position), receive=True)
            return sample

        self.host.learn(StepData(step["step"], step["new_classes"], step["seen_classes"], step["vocabulary"],
                                   step["count"], load, progress=self.progress.bar))

    def predict(self, images: list[ImageInput], vocab: Vocabulary) -> list:
        for image in images:
            image.image.flags.writeable = False  # as the runner hands them over in-process
        return list(self.host.predict(images, vocab))

    def state_dict(self) -> dict:
        """The state pickled (opaque to the parent) and its faiss indexes / row stores as scratch files."""
        files: list[str] = []

        def write(suffix: str, save) -> str:
            name = f"state-{len(files)}.{suffix}"
            with open(self.scratch / name, "wb") as handle:
                save(handle)
            files.append(name)
            return name

        state = {"method": externalise(self.host.state_dict(), write), "rng": self.host.rng_states()}
        return {"pickle": pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), "files": files}

    def load_state_dict(self, state: dict) -> None:
        restored = pickle.loads(state["pickle"])
        self.host.load_state_dict(internalise(restored["method"], self.scratch))
        self.host.set_rng_states(restored["rng"])

    @staticmethod
    def stream_metrics(scores: StreamScores, known: list[str]) -> dict[str, float]:
        """The values of the stream metrics registered here (by the plugins) that the parent does not know."""
        return {metric.name: float(metric.compute(scores)) for metric in stream_metrics() if metric.name not in known}

    def handle(self, op: str, args: tuple) -> Any:
        handlers = {
            "learn": self.learn, "predict": self.predict, "state_dict": self.state_dict,
            "load_state_dict": self.load_state_dict, "memory_bytes": self.host.memory_bytes,
            "trainable_parameters": self.host.trainable_parameters, "rng_states": portable_rng_states,
            "set_rng_states": set_portable_rng_states, "counters": self.host.counters,
            "stream_metrics": self.stream_metrics,
        }
        return handlers[op](*args)


def error_reply(exc: BaseException) -> tuple[str, dict]:
    """("error", ...) with the exception's one line. The method's own exception (a MethodError) also sends its
    frames as text, for the parent to print as it would in-process; any other exception is the harness's: its
    traceback goes to this process's stderr."""
    if isinstance(exc, MethodError):
        return "error", {"type": exc.kind, "message": exc.message, "user": False,
                         "frames": [dataclasses.asdict(frame) for frame in exc.frames]}
    if not isinstance(exc, UserError):
        traceback.print_exc()
    lines = str(exc).strip().splitlines()
    message = lines[0] if lines else ""
    return "error", {"type": type(exc).__name__, "message": message, "user": isinstance(exc, UserError)}


def serve(channel: Channel) -> int:
    """Answer the parent's requests until it says close or is gone (0), or the method cannot be built (1)."""
    try:
        return _serve(channel)
    except ParentGone:
        return 0


def _serve(channel: Channel) -> int:
    try:
        _, setup = talk(channel, receive=True)
        worker = Worker(channel, setup)
    except Exception as exc:  # noqa: BLE001  (reported to the parent, which fails the run with it)
        talk(channel, error_reply(exc))
        return 1
    talk(channel, ("ok", worker.started))
    while True:
        op, *args = talk(channel, receive=True)
        if op == "close":
            return 0
        try:
            reply = ("ok", worker.handle(op, tuple(args)))
        except Exception as exc:  # noqa: BLE001
            reply = error_reply(exc)
        talk(channel, reply)


if __name__ == "__main__":
    sys.exit(serve(Channel(Connection(int(sys.argv[1])), restricted=False)))
