"""`StreamEvaluator`: the harness's evaluator for any training loop.

    evaluator = StreamEvaluator(stream)                  # stream = streams.load(...)
    evaluator.evaluate_step(-1, predict)                 # optional: row -1 of R, before any training
    for step in stream.steps:
        ...train on step.train_dataset()...
        evaluator.evaluate_step(step.index, predict)     # predict(batch) -> label maps over S_t ids
    summary = evaluator.results()                        # summary.json's content: matrices R[t][j], forgetting, ...
    run_dir = evaluator.write("results", method="mynet") # a run folder the leaderboard reads

It scores with the loop `covseg run` scores with (benchmark/evaluation/scoring.py) and summarises with the
same code (benchmark/evaluation/summary.py), so a loop that predicts what a method predicts gets its numbers.
"""
from __future__ import annotations

import copy
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf

from benchmark.data.types import ImageInput
from benchmark.errors import UserError
from benchmark.evaluation.scoring import score_validation, validation_record
from benchmark.evaluation.summary import initial_scores, step_scores, summarize, write_run_results
from benchmark.method import SegmentationOutput
from benchmark.provenance import source_record
from benchmark.run.checkpoint import rng_states, set_rng_states
from benchmark.run.writer import RunWriter

EVAL_CHOICES = {"vocabulary": ("seen", "all"), "miou_mode": ("present", "legacy")}


def as_output(prediction: Any) -> SegmentationOutput:
    """One image's prediction: a SegmentationOutput, a dict with `sem_seg` (and `pan_seg`, `segments`), or a
    (H, W) label map (torch tensor or numpy array) of class ids."""
    if isinstance(prediction, SegmentationOutput):
        return prediction
    if isinstance(prediction, dict):
        pan_seg = prediction.get("pan_seg")
        return SegmentationOutput(_label_map(prediction["sem_seg"]),
                                  None if pan_seg is None else _label_map(pan_seg),
                                  list(prediction.get("segments") or []), list(prediction.get("scores") or []))
    return SegmentationOutput(_label_map(prediction))


def _label_map(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.int64)


class StreamEvaluator:
    """Scores a loop's predictions step by step, as `covseg run` scores a method's. `eval` settings as the CLI's
    `eval.*` keys: vocabulary (seen: S_t is scored, other ground truth ignored; all: every class), miou_mode,
    batch_size (images per `predict` call), max_images (the first N validation images only)."""

    def __init__(self, stream: Any, vocabulary: str = "seen", miou_mode: str = "present", batch_size: int = 8,
                 max_images: int | None = None) -> None:
        settings = {"vocabulary": vocabulary, "miou_mode": miou_mode, "batch_size": batch_size,
                    "max_images": max_images}
        for key, allowed in EVAL_CHOICES.items():
            if settings[key] not in allowed:
                raise UserError(f"eval.{key}={settings[key]} is not one of: {', '.join(allowed)}")
        for key in ("batch_size", "max_images"):
            if settings[key] is not None and settings[key] <= 0:
                raise UserError(f"eval.{key} must be positive, got {settings[key]}")
        self.stream = stream
        self.config = OmegaConf.create(OmegaConf.to_container(stream.config))
        self.config.eval.update(settings)
        self.config.eval.initial = False
        self._steps: list[dict[str, np.ndarray]] = []
        self._records: list[dict] = []  # per step: costs and scores, as stats/step_NNN.json holds them
        self._initial: tuple[dict[str, np.ndarray], dict] | None = None  # (raw statistics, record)
        self._clock = time.perf_counter()  # learn_seconds: the time since the last evaluation ended

    @property
    def validation_count(self) -> int:
        val = self.stream.val_split
        limit = self.config.eval.max_images
        return len(val) if limit is None else min(limit, len(val))

    def evaluate_step(self, step: int, predict: Callable[[list[dict]], Sequence[Any]],
                      learn_seconds: float | None = None, memory_bytes: int = 0,
                      trainable_parameters: int = 0) -> dict:
        """Score `predict` after learning step `step` (0, 1, ... in order; -1: the initial evaluation before
        step 0, every class scored, as `covseg run`'s row -1). `predict(batch)` gets a list of
        {"image": (H, W, 3) uint8 tensor, "image_id": str} and returns one prediction per image (`as_output`):
        class ids of S_t (every class at -1 or with vocabulary="all"). `learn_seconds` defaults to the time
        since the previous evaluation ended (or the evaluator was made); the costs go to the run folder.
        Returns the step's record: {"step", "miou_seen"[, "pq_seen"]} (for step -1, "miou_all")."""
        expected = len(self._steps)
        if step != expected and not (step == -1 and expected == 0 and self._initial is None):
            raise UserError(f"evaluate_step({step}): steps are evaluated in order; the next is step {expected}"
                            + (" (or -1, the initial evaluation, before it)" if expected == 0 else ""))
        if step >= self.stream.num_steps:
            raise UserError(f"evaluate_step({step}): the stream {self.stream.name} has {self.stream.num_steps} steps")
        learned = time.perf_counter() - self._clock
        states = rng_states() if step == -1 else None  # the steps that follow draw what they would without it
        started = time.perf_counter()
        stats = self._score(step, predict)
        eval_seconds = time.perf_counter() - started
        if states is not None:
            set_rng_states(states)
        miou_mode = self.config.eval.miou_mode
        if step == -1:
            initial = {"eval_seconds": eval_seconds,
                       **initial_scores(stats, self.stream.definition.step_classes, miou_mode)}
            self._initial = (stats, initial)
            record = {"step": -1, "miou_all": initial["miou_all"]}
        else:
            scores = step_scores(stats, self.stream.steps[step].seen, miou_mode)
            self._steps.append(stats)
            self._records.append({
                "learn_seconds": learned if learn_seconds is None else float(learn_seconds),
                "eval_seconds": eval_seconds, "memory_bytes": int(memory_bytes),
                "trainable_parameters": int(trainable_parameters), **scores})
            record = {"step": step, **scores}
        self._clock = time.perf_counter()
        return record

    def _score(self, step: int, predict: Callable[[list[dict]], Sequence[Any]]) -> dict[str, np.ndarray]:
        stream = self.stream
        every = step == -1 or self.config.eval.vocabulary == "all"
        scored = stream.vocabulary.ids if every else stream.steps[step].seen

        def predict_images(images: list[ImageInput]) -> list[SegmentationOutput]:
            if not images:
                return []
            batch = [{"image": torch.from_numpy(np.array(image.image)), "image_id": image.image_id} for image in images]
            return [as_output(prediction) for prediction in predict(batch)]

        return score_validation(stream.val_split, self.validation_count, stream.protocol, scored, stream.panoptic,
                                predict_images, self.config.eval.batch_size, who="predict")

    def results(self, method: str = "external", run_id: str | None = None) -> dict:
        """summary.json's content (same keys and numbers as `covseg run`'s): `matrices` (R[t][j] per metric),
        `initial` (row -1), `metrics` (final, avg_incremental, forgetting, bwt, ...), `seen`, costs."""
        if len(self._steps) != self.stream.num_steps:
            raise UserError(f"results(): {len(self._steps)} of the stream's {self.stream.num_steps} steps are "
                            "evaluated; call evaluate_step for each step first")
        return summarize(self._steps, self._initial[0] if self._initial else None, self._records,
                         self.stream.definition.step_classes, self.stream.name,
                         method, run_id, self.config.eval.miou_mode)

    def write(self, results_dir: str | Path = "results", method: str = "external", model: str = "external",
              run_id: str | None = None, source_files: Sequence[str | Path] | None = None) -> Path:
        """A complete run folder `results_dir/<stream>/<method>/<run-id>/` the leaderboard reads, as `covseg run`
        writes one; its manifest says `"loop": "external"`. `source_files`: the code of the loop (recorded with
        their sha256 as the method's source; default: the script that is running)."""
        self.results()  # every step evaluated
        config = copy.deepcopy(self.config)
        config.update({"results_dir": str(results_dir), "run_id": run_id, "method": {"name": method},
                       "model": {"name": model}, "eval": {**config.eval, "initial": self._initial is not None}})
        if source_files is None:
            main = getattr(sys.modules.get("__main__"), "__file__", None)
            source_files = [main] if main else []
        source = source_record([Path(f).resolve() for f in source_files], False, "__main__", "external loop")
        protocol, data = self._manifest_records()
        writer = RunWriter.create(config, self.stream.definition, source, protocol=protocol, plugins=[],
                                  execution={"isolate": False, "sandbox": False}, loop="external")
        try:
            if self._initial is not None:
                writer.write_initial(*self._initial)
            for t, (stats, record) in enumerate(zip(self._steps, self._records)):
                writer.write_step(t, stats, record)
            stream = self.stream.definition
            summary, plots = write_run_results(writer.run_dir, stream.step_classes, stream.vocabulary.names,
                                               stream.name, method, self.config.eval.miou_mode)
            writer.finish(summary, plots, data=data)
        except BaseException as exc:
            writer.mark_ended(exc)
            raise
        return writer.run_dir

    def _manifest_records(self) -> tuple[dict, dict]:
        """What `covseg run` records in the manifest: the protocol (what the loop was allowed to see) and the
        validation images scored (their count and digest: the leaderboard pairs runs over the same set)."""
        protocol = {"ground_truth_access": None, "vocabulary": self.config.eval.vocabulary,
                    "preset": self.stream.protocol.describe(self.config.stream), "loop": "external"}
        data = validation_record(self._steps[-1]["image_ids"], self.stream.val_split, self.validation_count,
                                 self.stream.train_split, self.config.data.on_error)
        return protocol, data
