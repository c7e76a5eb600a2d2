"""The parent's side of isolate=true: `WorkerHost` starts the method's worker process and is its MethodHost."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf

import benchmark
from benchmark.config import data_root
from benchmark.data.types import ImageInput, Sample, Vocabulary
from benchmark.errors import Frame, MethodError, UserError, clean_text
from benchmark.evaluation.stream_metrics import StreamScores, stream_metrics
from benchmark.hosts.worker.channel import Channel
from benchmark.hosts.worker.reaper import adopt_orphans, children, end_descendants
from benchmark.hosts.worker.replies import ReplyError, check, check_outputs
from benchmark.hosts.worker.sandbox import allowed_paths, check_available, code_folders, worker_ids, worker_user
from benchmark.hosts.worker.scratch import Scratch
from benchmark.method import METHODS, SegmentationOutput, StepData
from benchmark.models import feature_cache_dir
from benchmark.plugins import foreign_files_on_disk, foreign_roots, is_under, load_methods
from benchmark.provenance import code_records, in_repo, method_source, source_record
from benchmark.run.checkpoint import rng_states

HARNESS_ROOT = Path(benchmark.__file__).resolve().parents[1]  # holds benchmark/, baselines/, methods/, streams/
# what the worker's environment keeps: locale, temp and cache folders, thread and GPU settings, model weight
# caches, and the plugin folders it imports; everything else (DETECTRON2_DATASETS, torchrun's rendezvous, ...)
# stays behind
KEPT_VARIABLES = ("PATH", "HOME", "USER", "LANG", "TZ", "XDG_CACHE_HOME", "COVSEG_PATH", "LD_LIBRARY_PATH",
                  "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TORCH_HOME", "WANDB_MODE")
KEPT_PREFIXES = ("LC_", "CUDA_", "HF_", "NVIDIA_")


# the worker's first reply: its method's checked config, the module, class and source files of that class
STARTED = {"method": "dict", "module": "str", "class": "str", "files": "str list"}
# under sandbox=true, the first stage's reply (benchmark.confine): which network block took hold
NETWORK_BLOCKS = ("netns", "seccomp", "landlock-tcp", "none")
# the method's call behind a request, where their names differ (a MethodError names the call)
METHOD_CALLS = {"start": "__init__"}


class WorkerError(UserError):
    """The method's worker failed or broke the protocol: one line here, its traceback on stderr above."""


def worker_environment(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in KEPT_VARIABLES or k.startswith(KEPT_PREFIXES)}
    env["TMPDIR"] = str(scratch)  # its temporary files (row stores) in its own folder
    # the harness the parent runs (a checkout may differ from an installed copy), then the user's PYTHONPATH
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HARNESS_ROOT), os.environ.get("PYTHONPATH")) if p)
    return env


def _absolute(path: str | None) -> str | None:
    return path if path in (None, "off") else str(Path(path).expanduser().resolve())


class WorkerHost:
    """The method in its worker process, behind the MethodHost calls. `started` is the worker's first reply:
    the method's checked config and the source files its class comes from."""

    def __init__(self, process: subprocess.Popen, channel: Channel, scratch: Scratch, name: str, sandbox: bool,
                 timeout: float = 1800.0, num_classes: int = 0) -> None:
        self.process = process
        self.channel = channel
        self.scratch = scratch  # its working directory and state files
        self.name = name
        self.sandbox = sandbox  # the worker confined its file access with Landlock
        self.timeout = timeout  # seconds the parent waits for each message of the worker (isolate_timeout_s)
        self.num_classes = num_classes  # of the dataset: the class ids a prediction may hold
        self.started: dict = {}
        self.startup_seconds = 0.0  # from spawning the worker to its method being built
        self.bytes_moved: dict[str, int] = {}  # per request kind, both directions (perf isolate)
        self.children_before: set[int] = set()  # this process's children when the worker started
        self.contained: dict = {}  # sandbox=true: its network block, user id and read override (`execution`)

    @classmethod
    def start(cls, cfg: DictConfig, num_classes: int, device: str, quiet: bool) -> "WorkerHost":
        began = time.perf_counter()
        if cfg.sandbox:
            check_available()
        ids = worker_ids() if cfg.sandbox else None  # root's sandboxed worker becomes this user
        scratch = Scratch(owner=ids)
        ours, theirs = socket.socketpair()
        adopt_orphans()
        before = children()
        entry = "benchmark.confine" if cfg.sandbox else "benchmark.hosts.worker.worker"  # confine runs the worker
        process = subprocess.Popen([sys.executable, "-m", entry, str(theirs.fileno())],
                                   env=worker_environment(scratch.path), cwd=scratch.path, pass_fds=[theirs.fileno()],
                                   start_new_session=True)
        theirs.close()
        host = cls(process, Channel(Connection(ours.detach()), restricted=True), scratch, cfg.method.name,
                   bool(cfg.sandbox), float(cfg.isolate_timeout_s), num_classes)
        model = OmegaConf.to_container(cfg.model)
        model.update(cache_dir=_absolute(model["cache_dir"]), predictions_dir=_absolute(model["predictions_dir"]))
        if cfg.sandbox and feature_cache_dir(cfg.model) is not None:
            # its feature cache is its own, for this run only: no other run reads what a sandboxed worker wrote
            model["cache_dir"] = str(scratch.path / "features")
        rng = rng_states()
        setup = {"method": OmegaConf.to_container(cfg.method), "model": model, "seed": cfg.seed, "device": device,
                 "threads": torch.get_num_threads(), "num_classes": num_classes, "quiet": quiet,
                 "rng": {**rng, "torch": rng["torch"].numpy()}, "scratch": str(scratch.path)}
        host.children_before = before
        try:
            if cfg.sandbox:
                host.contain(sandbox_plan(cfg, scratch.path, model, ids))
            host.started = check(host.request("start", setup), STARTED, f"method {cfg.method.name}: start reply")
            if host.started["method"].get("name") != cfg.method.name:
                raise WorkerError(f"method {cfg.method.name}: its worker built {host.started['method'].get('name')}")
        except BaseException:
            host.close()
            raise
        host.startup_seconds = time.perf_counter() - began
        return host

    def contain(self, plan: dict) -> None:
        """Have the worker's first stage apply `plan` to itself; record who it runs as and its network block."""
        reply = check(self.request("contain", plan), {"network": "str"}, f"method {self.name}: reply to contain")
        if reply["network"] not in NETWORK_BLOCKS:
            raise ReplyError(f"method {self.name}: reply to contain['network']: expected one of "
                             f"{', '.join(NETWORK_BLOCKS)}, got {reply['network']!r}")
        user = plan["user"] or {"uid": os.geteuid(), "read_override": False}
        self.contained = {"network": reply["network"], "uid": user["uid"], "read_override": user["read_override"]}

    def request(self, op: str, *args: Any, samples: Callable[[int], Sample | None] | None = None) -> Any:
        """Send one request and return its reply; during `learn`, answer the worker's sample requests."""
        moved = self.channel.sent + self.channel.received
        try:
            return self._exchange(op, args, samples)
        finally:
            self.bytes_moved[op] = self.bytes_moved.get(op, 0) + self.channel.sent + self.channel.received - moved

    def _exchange(self, op: str, args: tuple, samples: Callable[[int], Sample | None] | None) -> Any:
        self._send(op, (op, *args))
        while True:
            kind, payload = self._receive(op)
            if kind == "ok":
                return payload
            if kind == "error":
                raise self._failure(op, payload)
            if kind == "sample" and samples is not None and isinstance(payload, int):
                self._send(op, ("ok", samples(payload)))
                continue
            raise WorkerError(f"method {self.name}: its worker sent '{kind}' during {op} (protocol violation)")

    def _failure(self, op: str, payload: Any) -> Exception:
        """The error the worker reported for `op`: the method's own exception with its frames (untrusted text:
        MethodError cleans and cuts it) as it would come out in-process, else one line."""
        where = f"method {self.name}: error reply to {op}"
        check(payload, {"message": "str", "type": "str"}, where)
        if "frames" in payload:
            frames = [Frame.of(**item) for item in check(payload["frames"], "frames", f"{where}['frames']")]
            return MethodError(self.name, METHOD_CALLS.get(op, op), payload["type"], payload["message"], frames,
                               in_worker=True)
        reason = payload["message"] if payload.get("user") else f"{payload['type']}: {payload['message']}"
        reason = clean_text(reason.strip().splitlines()[0] if reason.strip() else "", 500)
        return WorkerError(f"method {self.name} failed in its worker ({op}): {reason}")

    def _send(self, op: str, message: tuple) -> None:
        try:
            self.channel.send(message)
        except OSError:
            raise self._died(op, "broken socket") from None

    def _receive(self, op: str) -> tuple:
        try:
            message = self.channel.recv(self.timeout)
        except TimeoutError:
            self.process.kill()  # it may be stuck anywhere: it gets no chance to answer late
            raise WorkerError(f"method {self.name}: its worker sent nothing for {self.timeout:g} s during {op} "
                              f"(isolate_timeout_s={self.timeout:g})") from None
        except (EOFError, OSError):
            raise self._died(op, "end of stream") from None
        except Exception as exc:  # noqa: BLE001  (a refused global, a malformed pickle or message)
            raise WorkerError(f"method {self.name}: unusable reply from its worker during {op} ({exc})") from None
        if not (isinstance(message, tuple) and len(message) == 2 and isinstance(message[0], str)):
            raise ReplyError(f"method {self.name}: reply to {op}: expected a pair (kind, payload), "
                             f"got {type(message).__name__}")
        return message

    def _died(self, op: str, what: str) -> WorkerError:
        try:
            code = self.process.wait(timeout=10)  # the socket closes just before the process ends
        except subprocess.TimeoutExpired:
            code = None
        return WorkerError(f"method {self.name}: its worker died during {op} "
                           f"({'exit code ' + str(code) if code is not None else what}); its error, if any, is above")

    def learn(self, step: StepData) -> None:
        def sample(position: int) -> Sample | None:
            if not 0 <= position < len(step):
                raise WorkerError(f"method {self.name} asked for training sample {position} of a step of {len(step)}")
            return step.sample_at(position)

        self.request("learn", {"step": step.step, "new_classes": step.new_classes, "seen_classes": step.seen_classes,
                               "vocabulary": step.vocabulary, "count": len(step)}, samples=sample)

    def predict(self, images: list[ImageInput], vocab: Vocabulary) -> list[SegmentationOutput]:
        return check_outputs(self.request("predict", images, vocab), images, self.num_classes,
                             f"method {self.name}: reply to predict")

    def state_dict(self) -> dict:
        """The worker's state as it sent it (opaque bytes, never unpickled here) with its side files as byte
        stores, which the checkpoint writes as side files of its own."""
        state = check(self.request("state_dict"), {"pickle": "bytes", "files": "str list"},
                      f"method {self.name}: reply to state_dict")
        who = f"method {self.name} (state_dict)"
        files = {}
        for name in state["files"]:
            files[name] = self.scratch.take(name, who)
        return {"isolated": state["pickle"], "files": files}

    def load_state_dict(self, state: dict) -> None:
        for name, rows in state["files"].items():
            self.scratch.put(name, rows, f"method {self.name} (load_state_dict)")
        self.request("load_state_dict", {"pickle": state["isolated"], "files": list(state["files"])})

    def memory_bytes(self) -> int:
        return int(check(self.request("memory_bytes"), "count", f"method {self.name}: reply to memory_bytes"))

    def trainable_parameters(self) -> int:
        return int(check(self.request("trainable_parameters"), "count",
                         f"method {self.name}: reply to trainable_parameters"))

    def rng_states(self) -> dict:
        return check(self.request("rng_states"), "dict", f"method {self.name}: reply to rng_states")

    def set_rng_states(self, states: dict) -> None:
        self.request("set_rng_states", states)

    def counters(self) -> dict:
        return check(self.request("counters"), "counters", f"method {self.name}: reply to counters")

    def stream_metrics(self, scores: StreamScores) -> dict[str, float]:
        """The stream metrics the plugins registered in the worker (imported there, never here), computed there
        from `scores`: R, its initial row and the last step's per-class scores (numbers, no labels). Those
        registered here are never taken from it."""
        known = [metric.name for metric in stream_metrics()]
        values = check(self.request("stream_metrics", scores, known), "metric values",
                       f"method {self.name}: reply to stream_metrics")
        return {name: float(value) for name, value in values.items() if name not in known}

    def provenance(self) -> tuple[dict, list[dict]]:
        """Computed here from the files on disk: no plugin code ever ran in this process."""
        return isolated_provenance(self.name, self.started)

    def execution(self) -> dict:
        return {"isolate": True, "sandbox": self.sandbox, **self.contained}

    def close(self) -> None:
        """Ask the worker to exit (kill it if it does not within 30 s), kill every process it started, and
        remove its scratch folder."""
        try:
            if self.process.poll() is None:
                self.channel.send(("close",))
        except OSError:
            pass
        self.channel.close()  # a worker still waiting for an answer sees the stream end, and exits
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        end_descendants(self.process.pid, self.children_before)  # what it started ends with it
        self.scratch.remove()


def sandbox_plan(cfg: DictConfig, scratch: Path, model: dict, ids: tuple[int, int] | None) -> dict:
    """What the sandboxed worker may read and write (never the data root or the results, whatever sys.path
    holds; model=cached's predictions), and the user it becomes where this process is root."""
    predictions = [Path(model["predictions_dir"])] if model["predictions_dir"] else []
    private = [data_root(cfg), Path(cfg.results_dir)]
    code = [*code_folders(HARNESS_ROOT, private), *foreign_roots(cfg.method.name)]
    paths = allowed_paths(scratch, code, predictions)
    return {**paths, "user": worker_user(ids, paths)}


def isolated_provenance(name: str, started: dict) -> tuple[dict, list[dict]]:
    """The manifest's `method_source` and `plugins` of an isolated run, hashed here from files this process
    finds and reads itself: a project method's as without isolation; a plugin's over every importable file of
    the run's foreign code (`foreign_files_on_disk`: the plugin folders, its entry points' packages) and the
    files of this repository its worker names for its class's bases (never `registered`). `plugins`: the
    same foreign files. What the worker says only fails the run where it names no file of the plugin
    folders as its class's source."""
    load_methods(name, foreign=False)
    foreign = foreign_files_on_disk(name)
    plugins = code_records(foreign)
    if name in METHODS:
        return method_source(name), plugins
    roots = foreign_roots(name)
    named = [Path(path).resolve() for path in started["files"]]
    if not any(is_under(path, roots) for path in named):
        raise WorkerError(f"method {name} is not one of the project's, and its worker names no file of a plugin "
                          f"folder or entry point as its source ({', '.join(map(str, named))})")
    files = [path for path in foreign.values() if is_under(path, roots)] + [path for path in named if in_repo(path)]
    return source_record(files, False, started["module"], started["class"]), plugins
