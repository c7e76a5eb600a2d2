"""`manifest.json` of a run folder as a typed record: what ran, on which code and machine, and in which state.

The run writer (benchmark.run.writer) is its only author; every reader (`results.load`, the leaderboard,
`report`, `resume`) reads it with `Manifest.read`. Manifests written by earlier versions read too: a missing key
is None, and a key this version does not know is kept in `extra` and written back unchanged. results/README.md
describes every key.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.io import atomic_write_json
from benchmark.run.state import process_gone

MANIFEST_FILE = "manifest.json"


@dataclass
class Manifest:
    """One run's manifest, fields in the order they are written. A field that is None is left out of the file,
    except `finished` (None while the run goes on)."""

    run_id: str | None = None  # the run folder's name
    status: str | None = None  # running | complete | failed | interrupted
    stream: str | None = None  # stream name
    stream_version: int | None = None  # the stream definition's version
    stream_hash: str | None = None  # digest of the stream: class order, step classes and image lists
    step_image_hashes: list[str] | None = None  # sha256 of each step's training image list
    step_classes: list[list[int]] | None = None  # C_t: the class ids revealed at each step
    vocabulary: str | None = None  # the dataset's vocabulary name
    method: str | None = None  # method name
    model: dict | None = None  # the resolved model config
    seed: int | None = None  # the run's seed
    seeds: dict | None = None  # every seed: seed, stream.order_seed, data.demo_seed
    git: dict | None = None  # commit, dirty flag and changed paths (or the installed distribution)
    method_source: dict | None = None  # digest and sha256 of the method's source files (provenance.method_source)
    packages: dict | None = None  # versions of the packages the numbers depend on
    python: str | None = None  # Python version
    host: str | None = None  # host name
    process: dict | None = None  # host, pid and start time of the process writing the run
    platform: str | None = None  # operating system
    hardware: dict | None = None  # CPU model, cores, usable cores, RAM bytes, GPU names
    device: str | None = None  # the configured device
    started: str | None = None  # UTC start time
    finished: str | None = None  # UTC time the run ended (None while running)
    tracker_id: str | None = None  # the experiment tracker's run id, so a resumed run continues it
    plugins: list[dict] | None = None  # module, path, sha256 of every foreign module imported
    world_size: int | None = None  # processes that shared the work
    threads: int | None = None  # torch threads per process
    environment: dict | None = None  # torch, CUDA and thread settings (provenance.torch_environment)
    protocol: dict | None = None  # what the method was allowed to see: ground truth access, vocabulary, preset
    execution: dict | None = None  # how the method ran: isolate (a worker process), sandbox, its network, uid
    resumed: list[dict] | None = None  # time, host, hardware, git and method source of each resumption
    passes: dict | None = None  # backbone / embedder / text encoder passes and disk cache counts
    data: dict | None = None  # validation images scored (count, digest) and images skipped by data.on_error
    failure: str | None = None  # why a failed or interrupted run stopped, in one line
    unresumable: str | None = None  # why the run cannot be continued (resume=auto passes over it)
    loop: str | None = None  # "external": a loop of the user's own scored by StreamEvaluator (else the runner)
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as read

    @classmethod
    def from_dict(cls, values: dict) -> "Manifest":
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in values.items() if k in known},
                   extra={k: v for k, v in values.items() if k not in known})

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        """The manifest at `path` (a manifest.json or the run folder holding one); OSError when it cannot be read,
        ValueError when it is not a JSON object."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_FILE
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            raise ValueError(f"{path} does not hold a JSON object")
        return cls.from_dict(values)

    def to_dict(self) -> dict:
        values = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if item.name != "extra" and (value is not None or item.name == "finished"):
                values[item.name] = value
        return {**values, **self.extra}

    def write(self, run_dir: Path) -> None:
        atomic_write_json(Path(run_dir) / MANIFEST_FILE, self.to_dict())

    @property
    def isolate(self) -> bool:
        """The method ran in its own worker process (`execution.isolate`; `protocol.isolate` in older runs)."""
        return (self.execution or self.protocol or {}).get("isolate") is True

    @property
    def sandbox(self) -> bool:
        """The worker was confined by the sandbox (`execution.sandbox`; `protocol.sandbox` in older runs)."""
        return (self.execution or self.protocol or {}).get("sandbox") is True

    @property
    def public_draw(self) -> bool:
        """The run scored the demo's public draw (secret 0), whose labels any method can regenerate."""
        return (self.data or {}).get("public_draw") is True

    @property
    def ground_truth_access(self) -> str | None:
        """`protocol.ground_truth_access` (None: the sealed protocol, also for manifests without `protocol`)."""
        return (self.protocol or {}).get("ground_truth_access")

    def observed_status(self) -> str | None:
        """The status, except `stale` for a `running` run whose process has ended (benchmark.run.state)."""
        return "stale" if self.status == "running" and process_gone(self.process or {}) else self.status

    def state_line(self) -> str:
        """An unfinished run's state in words; `stale`: left `running` by a process that has ended."""
        status = self.observed_status()
        if status == "stale":
            return (f"status 'stale' (left running by process {self.process['pid']} on {self.process['host']}, "
                    "which has ended)")
        return f"status {status!r}"

