"""`MethodHost`: what the runner (and `show`) call on a run's method, wherever the method lives."""
from __future__ import annotations

from typing import Protocol

from benchmark.data.types import ImageInput, Vocabulary
from benchmark.evaluation.stream_metrics import StreamScores
from benchmark.method import SegmentationOutput, StepData


class MethodHost(Protocol):
    """A ContinualMethod's calls, plus what its process knows: its RNG states, its models' work counters, the
    provenance of its code and how it is executed. Built by `benchmark.hosts.make_host`."""

    def learn(self, step: StepData) -> None: ...

    def predict(self, images: list[ImageInput], vocab: Vocabulary) -> list[SegmentationOutput]: ...

    def state_dict(self) -> dict:
        """Everything needed to resume after a step: what the run's checkpoint stores as `method`."""
        ...

    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict` of a host made from the same config."""
        ...

    def memory_bytes(self) -> int: ...

    def trainable_parameters(self) -> int: ...

    def rng_states(self) -> dict:
        """The global RNG states of the method's process."""
        ...

    def set_rng_states(self, states: dict) -> None: ...

    def counters(self) -> dict:
        """The method's models' work counters (benchmark.models.counters.encoder_counters)."""
        ...

    def stream_metrics(self, scores: StreamScores) -> dict[str, float]:
        """{name: value} of the stream metrics registered where the method runs but not in this process (the
        plugins a worker imported), from one score's `scores`; the runner adds them to summary.json."""
        ...

    def provenance(self) -> tuple[dict | None, list[dict]]:
        """The manifest's `method_source` (None: the run writer computes it from the registered class) and its
        `plugins` (every module imported from outside the repository, with its sha256)."""
        ...

    def execution(self) -> dict:
        """The manifest's `execution`: how the method was run (`isolate`, `sandbox`)."""
        ...

    def close(self) -> None:
        """Release the method's process and files; the host is unusable afterwards."""
        ...
