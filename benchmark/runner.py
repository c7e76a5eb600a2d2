"""run_stream(): for each step, learn -> evaluate on the validation split -> persist raw statistics; then the
stream's matrices and summary. Every derived number is recomputed from the persisted raw statistics."""
from __future__ import annotations

import copy
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from benchmark import distributed
from benchmark.data.types import SegmentationDataset, Vocabulary
from benchmark.errors import MethodError, UserError
from benchmark.evaluation.scoring import score_validation, validation_record
from benchmark.evaluation.summary import format_summary, initial_scores, step_scores, write_run_results
from benchmark.hosts import MethodHost, make_host
from benchmark.method import StepData
from benchmark.models import check_device
from benchmark.progress import Progress
from benchmark.protocol import Protocol
from benchmark.run.checkpoint import checkpoint_dir, load_checkpoint, save_checkpoint, set_rng_states
from benchmark.run.resume import check_resumable, find_resumable
from benchmark.run.state import interrupt_on_signals
from benchmark.run.stats import STATS_DIR, step_stats_file
from benchmark.run.writer import RunWriter
from streams.builder import Stream
from streams.library import open_stream_data


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def during_step(step: int) -> Iterator[None]:
    """`with during_step(t):` a MethodError raised in the block names step t (-1: the initial evaluation)."""
    try:
        yield
    except MethodError as exc:
        if exc.step is None:
            exc.step = step
        raise


@dataclass
class RunContext:
    """Everything a run needs, built once from the config."""

    cfg: DictConfig
    stream: Stream
    train: SegmentationDataset
    val: SegmentationDataset
    host: MethodHost  # the method, wherever it lives (benchmark.hosts)
    progress: Progress
    protocol: Protocol  # the CSS protocol's training labels and evaluation rules (configs/protocol/)


def validation_count(cfg: DictConfig, val: SegmentationDataset) -> int:
    """How many validation images every step evaluates (the first ones; `eval.max_images` caps them)."""
    return len(val) if cfg.eval.max_images is None else min(cfg.eval.max_images, len(val))


def thread_count(setting: int | None) -> int:
    """`threads=N`, else $OMP_NUM_THREADS (torchrun sets 1), else the cores this process may use divided among
    the processes torchrun started on this machine: never more threads than cores (spin-waiting OpenMP threads
    on an oversubscribed CPU made the demo 3x slower)."""
    if setting is not None:
        return setting
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"])
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, usable // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def prepare_run(cfg: DictConfig) -> RunContext:
    seed_everything(cfg.seed)
    check_device(cfg.device)
    device = distributed.init_from_env(cfg.device)  # torchrun: join the process group, one device per rank
    torch.set_num_threads(thread_count(cfg.threads))
    progress = Progress(quiet=cfg.quiet or not distributed.is_main())
    train, val, stream = open_stream_data(cfg, progress.bar)
    protocol = Protocol.of(cfg.protocol, train.vocabulary)
    host = make_host(cfg, len(train.vocabulary), device, quiet=cfg.quiet or not distributed.is_main())
    return RunContext(cfg, stream, train, val, host, progress, protocol)


def ground_truth_access(cfg: DictConfig) -> str | None:
    """The analysis mode through which ground truth reaches the method on purpose (recorded in the manifest,
    kept off the leaderboard's ranking), or None: the sealed protocol."""
    return "oracle_proposals" if cfg.model.get("proposals") == "oracle" else None


def evaluate_step(ctx: RunContext, vocab: Vocabulary, step: int) -> dict[str, np.ndarray]:
    """Predict every validation image with `vocab` and return the raw statistics of the step (-1: the initial
    evaluation before step 0), scored by the loop every face shares (benchmark/evaluation/scoring.py).
    The method sees `ImageInput`s only (pixels, no labels) and a copy of `vocab`; the ground truth stays here,
    for the evaluator, filtered with the runner's own `vocab`."""
    cfg = ctx.cfg
    method_vocab = copy.deepcopy(vocab)  # the method's own copy: mutating it cannot change what is scored
    return score_validation(ctx.val, validation_count(cfg, ctx.val), ctx.protocol, list(vocab.ids),
                            ctx.stream.panoptic, lambda images: ctx.host.predict(images, method_vocab),
                            cfg.eval.batch_size, who=f"method {cfg.method.name}", progress=ctx.progress.bar,
                            desc=f"eval step {step}" if step >= 0 else "eval initial",
                            oracle=ground_truth_access(cfg) == "oracle_proposals")


def data_record(ctx: RunContext, run_dir: Path) -> dict:
    """The manifest's `data` (evaluation.scoring.validation_record), from the last step's scored image ids."""
    scored = np.load(run_dir / STATS_DIR / step_stats_file(ctx.stream.num_steps - 1))["image_ids"]
    return validation_record(scored, ctx.val, validation_count(ctx.cfg, ctx.val), ctx.train, ctx.cfg.data.on_error)


def evaluate_initial(ctx: RunContext, writer: RunWriter | None) -> None:
    """Row -1 of R: the untouched method (before learning step 0) evaluated with every class of the vocabulary,
    persisted as raw statistics like a step. The reference of forward transfer and learning gain; for an
    open-vocabulary method it is the zero-shot model. The global RNG states of the method's process are restored
    afterwards, so the steps that follow draw exactly what they would without it."""
    states = ctx.host.rng_states()
    started = time.perf_counter()
    with during_step(-1):
        stats = evaluate_step(ctx, ctx.train.vocabulary, step=-1)
    eval_seconds = time.perf_counter() - started
    ctx.host.set_rng_states(states)
    if writer is not None:
        scores = initial_scores(stats, ctx.stream.step_classes, ctx.cfg.eval.miou_mode)
        writer.write_initial(stats, {"eval_seconds": eval_seconds, **scores})
        ctx.progress.log(f"initial evaluation (every class, before step 0): mIoU {scores['miou_all']:.1f}  "
                         f"eval {eval_seconds:.1f}s")


def open_run(cfg: DictConfig, ctx: RunContext) -> tuple[RunWriter | None, Path, int]:
    """A new run folder, or (resume=RUN_DIR | auto) an interrupted one restored to its last completed step.
    Under torchrun only rank 0 gets a writer (None elsewhere); every rank restores the method state."""
    if not distributed.is_main():
        run_dir, first_step = distributed.broadcast_object(None)
        if first_step > 0:
            checkpoint = load_checkpoint(run_dir)
            ctx.host.load_state_dict(checkpoint["method"])
            set_rng_states(checkpoint["rng"])
        return None, run_dir, first_step
    writer, first_step = _open_run_main(cfg, ctx)
    distributed.broadcast_object((writer.run_dir, first_step))
    return writer, writer.run_dir, first_step


def _open_run_main(cfg: DictConfig, ctx: RunContext) -> tuple[RunWriter, int]:
    run_dir = find_resumable(cfg, ctx.stream) if cfg.resume == "auto" else (Path(cfg.resume) if cfg.resume else None)
    source, plugins = ctx.host.provenance()  # the method's source files and every plugin module, hashed
    # what the method was allowed to see: the leaderboard ranks sealed runs only
    protocol = {"ground_truth_access": ground_truth_access(cfg), "vocabulary": cfg.eval.vocabulary,
                "preset": ctx.protocol.describe(cfg.stream)}
    return _open_writer(cfg, ctx, run_dir, {"source": source, "plugins": plugins, "protocol": protocol,
                                            "execution": ctx.host.execution()})  # where the method ran


def _open_writer(cfg: DictConfig, ctx: RunContext, run_dir: Path | None, record: dict) -> tuple[RunWriter, int]:
    """`record`: the manifest's `source`, `plugins` and `protocol` (RunWriter.create's arguments)."""
    if run_dir is None:
        writer = RunWriter.create(cfg, ctx.stream, **record)
        ctx.progress.log(f"run {writer.run_dir}  ({ctx.stream.name}: {ctx.stream.num_steps} steps, "
                         f"{len(ctx.stream.vocabulary)} classes; method {cfg.method.name})")
        return writer, 0
    check_resumable(run_dir, cfg, ctx.stream)
    try:  # before the manifest says `running` again: a broken folder is reported once, then passed over
        checkpoint = load_checkpoint(run_dir)
    except UserError as exc:
        RunWriter.mark_unresumable(run_dir, str(exc))
        raise UserError(f"resume: {exc}; that run is now marked failed and resume=auto passes over "
                        "it, so the same command starts fresh (delete the folder if you no longer need it)") from None
    writer = RunWriter.reopen(run_dir, cfg, ctx.stream, **record)
    if checkpoint is None:
        ctx.progress.log(f"resume {run_dir}: no step completed yet, starting at step 0")
        return writer, 0
    ctx.host.load_state_dict(checkpoint["method"])
    set_rng_states(checkpoint["rng"])
    first_step = checkpoint["completed_step"] + 1
    ctx.progress.log(f"resume {run_dir}: steps 0..{first_step - 1} done, continuing at step {first_step}")
    return writer, first_step


def encoder_passes(ctx: RunContext, first_step: int) -> dict:
    """The method's models' work counters (benchmark.models.counters) against the distinct images the run
    touched (steps first_step..T): a bound the caches must keep, backbone passes <= distinct images."""
    training = {image_id for ids in ctx.stream.train_image_ids[first_step:] for image_id in ids}
    validation = len(distributed.shard(range(validation_count(ctx.cfg, ctx.val))))
    return {**ctx.host.counters(), "distinct_images": len(training) + validation, "distinct_training_images": len(training)}


def run_stream(cfg: DictConfig) -> Path:
    """Run one method over one stream; returns the run folder. Under torchrun only rank 0 writes it.
    Every run folder ends in a state: `complete`, or `failed` / `interrupted` with a one-line reason in the
    manifest (the steps written before stay, and `resume=` continues after them). SIGTERM and SIGHUP
    interrupt it like Ctrl-C (benchmark.run.state)."""
    with interrupt_on_signals():
        ctx = prepare_run(cfg)
        try:
            writer, run_dir, first_step = open_run(cfg, ctx)
            try:
                return _run_steps(cfg, ctx, writer, run_dir, first_step)
            except BaseException as exc:
                if writer is not None:
                    writer.mark_ended(exc)
                raise
        finally:
            ctx.host.close()


def _run_steps(cfg: DictConfig, ctx: RunContext, writer: RunWriter | None, run_dir: Path, first_step: int) -> Path:
    stream, host = ctx.stream, ctx.host
    full_vocab = ctx.train.vocabulary
    if first_step == 0 and cfg.eval.initial:
        evaluate_initial(ctx, writer)
    for t in range(first_step, stream.num_steps):
        step = StepData.of_stream(t, stream.step_classes[t], stream.seen_classes(t), full_vocab, ctx.train,
                                  stream.train_indices[t], progress=ctx.progress.bar,
                                  relabel=ctx.protocol.training_labels)
        with during_step(t):
            started = time.perf_counter()
            host.learn(step)
            learn_seconds = time.perf_counter() - started

            started = time.perf_counter()
            vocab = full_vocab if cfg.eval.vocabulary == "all" else full_vocab.subset(stream.seen_classes(t))
            stats = evaluate_step(ctx, vocab, t)
            eval_seconds = time.perf_counter() - started

            if writer is None:  # torchrun: only rank 0 writes
                continue
            record = writer.write_step(t, stats, {
                "learn_seconds": learn_seconds, "eval_seconds": eval_seconds, "memory_bytes": host.memory_bytes(),
                "trainable_parameters": host.trainable_parameters(),
                **step_scores(stats, stream.seen_classes(t), cfg.eval.miou_mode)})
            save_checkpoint(checkpoint_dir(writer.run_dir, t, cfg.checkpoint.keep), t, host.state_dict())
        pq = f"  PQ(S_{t}) {record['pq_seen']:.1f}" if "pq_seen" in record else ""
        ctx.progress.log(f"step {t + 1}/{stream.num_steps}: mIoU(S_{t}) {record['miou_seen']:.1f}{pq}  "
                         f"learn {learn_seconds:.1f}s  eval {eval_seconds:.1f}s  memory {record['memory_bytes'] / 1e6:.2f} MB")
    if writer is None:
        return run_dir
    passes, data = encoder_passes(ctx, first_step), data_record(ctx, run_dir)
    for dataset in (ctx.train, ctx.val):
        if hasattr(dataset, "summary"):  # data.on_error=skip: say what was left out (rank 0's shard under torchrun)
            ctx.progress.log(dataset.summary())
    summary, plots = write_run_results(run_dir, stream.step_classes, stream.vocabulary.names, stream.name,
                                       cfg.method.name, cfg.eval.miou_mode, more_metrics=host.stream_metrics)
    writer.finish(summary, plots, passes, data)
    ctx.progress.log(format_summary(summary, run_dir))
    return run_dir
