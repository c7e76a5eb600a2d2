"""`InProcessHost`: the method in this process, called directly (isolate=false, and inside a method's worker).
An exception of the method's code comes out as a MethodError (benchmark.hosts.failure)."""
from __future__ import annotations

from typing import Any

from benchmark.hosts.failure import call_method
from benchmark.run.checkpoint import rng_states, set_rng_states
from benchmark.data.types import ImageInput, Vocabulary
from benchmark.evaluation.stream_metrics import StreamScores
from benchmark.method import ContinualMethod, SegmentationOutput, StepData
from benchmark.models.counters import encoder_counters
from benchmark.provenance import plugin_records


class InProcessHost:
    """A MethodHost over `method` (registered as `name`), which shares this process with its caller (and
    `method` is reachable)."""

    def __init__(self, method: ContinualMethod, name: str) -> None:
        self.method = method
        self.name = name

    def _call(self, call: str, *args: Any) -> Any:
        return call_method(self.name, call, type(self.method), getattr(self.method, call), *args)

    def learn(self, step: StepData) -> None:
        self._call("learn", step)

    def predict(self, images: list[ImageInput], vocab: Vocabulary) -> list[SegmentationOutput]:
        return self._call("predict", images, vocab)

    def state_dict(self) -> dict:
        return self._call("state_dict")

    def load_state_dict(self, state: dict) -> None:
        self._call("load_state_dict", state)

    def memory_bytes(self) -> int:
        return self._call("memory_bytes")

    def trainable_parameters(self) -> int:
        return self._call("trainable_parameters")

    def rng_states(self) -> dict:
        return rng_states()

    def set_rng_states(self, states: dict) -> None:
        set_rng_states(states)

    def counters(self) -> dict:
        return encoder_counters(self.method.segmenter, getattr(self.method, "embedder", None))

    def stream_metrics(self, scores: StreamScores) -> dict[str, float]:
        """None besides this process's own: the method's plugins registered theirs here."""
        return {}

    def provenance(self) -> tuple[dict | None, list[dict]]:
        """The writer records the registered class's files; every module a run of this method imports from
        COVSEG_PATH or its entry points is listed, whether or not it registered the method."""
        return None, plugin_records(self.name)

    def execution(self) -> dict:
        return {"isolate": False, "sandbox": False}

    def close(self) -> None:
        pass
