"""run_stream(): for each step, learn -> evaluate on the validation split -> persist raw statistics; then the
stream's matrices and summary. Every derived number is recomputed from the persisted raw statistics."""
from __future__ import annotations

import copy
import hashlib
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from benchmark import distributed
from benchmark.config import data_root, method_config
from benchmark.data.demo import DEMO_DATASETS, claim_demo_secret
from benchmark.data.types import ImageInput, SegmentationDataset, Vocabulary
from benchmark.errors import UserError
from benchmark.evaluation.panoptic import PanopticEvaluator
from benchmark.evaluation.per_image import PerImageCounts
from benchmark.evaluation.semantic import SemanticEvaluator
from benchmark.isolation.parent import IsolatedMethod, isolated_provenance
from benchmark.method import METHODS, ContinualMethod, StepData, filter_sample
from benchmark.models import build_segmenter, check_device
from benchmark.models.feature_cache import FeatureCache, directory_bytes
from benchmark.progress import Progress
from benchmark.protocol import Protocol
from benchmark.provenance import plugin_records
from benchmark.run.checkpoint import load_checkpoint, rng_states, save_checkpoint, set_rng_states
from benchmark.run.resume import check_resumable, find_resumable
from benchmark.run.state import interrupt_on_signals
from benchmark.run.writer import RunWriter
from streams.builder import Stream, build_stream, cache_dir_for, open_dataset


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class RunContext:
    """Everything a run needs, built once from the config."""

    cfg: DictConfig
    stream: Stream
    train: SegmentationDataset
    val: SegmentationDataset
    method: ContinualMethod | IsolatedMethod  # isolate=true: the method in its worker process
    progress: Progress
    protocol: Protocol  # the CSS protocol's training labels and evaluation rules (configs/protocol/)


def open_stream_data(cfg: DictConfig, progress: Progress) -> tuple[SegmentationDataset, SegmentationDataset, Stream]:
    """The configured stream's training and validation splits and the stream drawn over them."""
    root = data_root(cfg)
    with distributed.main_first():  # rank 0 fills the on-disk caches (demo data, stream files) first
        if cfg.data.demo_secret is not None and cfg.stream.dataset in DEMO_DATASETS:
            claim_demo_secret(root, cfg.data.demo_seed, cfg.data.demo_secret)
        train = open_dataset(cfg.stream.dataset, "train", root, cfg.data.demo_seed, cfg.data.on_error, cfg.data.demo_scale)
        val = open_dataset(cfg.stream.dataset, "val", root, cfg.data.demo_seed, cfg.data.on_error, cfg.data.demo_scale)
        stream = build_stream(cfg.stream, train, cache_dir_for(root), progress.bar)
    return train, val, stream


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
    train, val, stream = open_stream_data(cfg, progress)
    protocol = Protocol.of(cfg.protocol, train.vocabulary)
    if cfg.isolate:
        method = IsolatedMethod.start(cfg, len(train.vocabulary), device, quiet=cfg.quiet or not distributed.is_main())
        cfg.method = method.started["method"]  # a plugin's keys, checked (and completed) by its worker
        return RunContext(cfg, stream, train, val, method, progress, protocol)
    segmenter = build_segmenter(cfg.model, seed=cfg.seed, device=device)
    method_cls = METHODS.get(cfg.method.name)
    method = method_cls(method_config(cfg), segmenter, len(train.vocabulary), seed=cfg.seed)
    return RunContext(cfg, stream, train, val, method, progress, protocol)


def ground_truth_access(cfg: DictConfig) -> str | None:
    """The analysis mode through which ground truth reaches the method on purpose (recorded in the manifest,
    kept off the leaderboard's ranking), or None: the sealed protocol."""
    return "oracle_proposals" if cfg.model.get("proposals") == "oracle" else None


def evaluate_step(ctx: RunContext, vocab: Vocabulary, step: int) -> dict[str, np.ndarray]:
    """Predict every validation image with `vocab` and return the raw statistics of the step (-1: the initial
    evaluation before step 0): the confusion matrix and, on panoptic streams, the per-class PQ sums. Ground
    truth outside `vocab` is ignored (VOID), or a background row, and images may not count: as the protocol says
    (ctx.protocol, benchmark/protocol.py).
    The method sees `ImageInput`s only (pixels, no labels) and a copy of `vocab`; the ground truth stays here,
    for the evaluator, filtered with the runner's own `vocab`.
    Under torchrun each rank predicts its shard of the images and the statistics are summed."""
    cfg = ctx.cfg
    full_vocab = ctx.train.vocabulary
    semantic = SemanticEvaluator(ctx.protocol.confusion_size)  # K, or K + 1 with a background row
    per_image = PerImageCounts(ctx.protocol.confusion_size)  # sparse per-image counts: bootstrap intervals over images
    panoptic = PanopticEvaluator([c.isthing for c in full_vocab.classes]) if ctx.stream.panoptic else None
    indices = distributed.shard(range(validation_count(cfg, ctx.val)))
    batch_size = cfg.eval.batch_size
    oracle = ground_truth_access(cfg) == "oracle_proposals"
    scored = list(vocab.ids)
    method_vocab = copy.deepcopy(vocab)  # the method's own copy: mutating it cannot change what is scored
    for start in ctx.progress.bar(range(0, len(indices), batch_size),
                                  desc=f"eval step {step}" if step >= 0 else "eval initial",
                                  total=(len(indices) + batch_size - 1) // batch_size):
        loaded = [(i, ctx.val.load(i)) for i in indices[start:start + batch_size]]
        # the protocol's ground truth; None: the image does not count at this step (and is not predicted)
        truths = [(i, s, ctx.protocol.evaluation_truth(s, filter_sample(s, scored), scored))
                  for i, s in loaded if s is not None]
        counted = [(i, s, gt) for i, s, gt in truths if gt is not None]
        batch = [s for _, s, _ in counted]
        images = [ImageInput.of(s, ctx.stream.panoptic, oracle) for s in batch]
        outputs = ctx.method.predict(images, method_vocab)
        if len(outputs) != len(batch):
            raise RuntimeError(f"method {cfg.method.name} returned {len(outputs)} outputs for {len(batch)} images")
        for (image_index, sample, gt), output in zip(counted, outputs):
            if output.sem_seg.shape != gt.sem_seg.shape:
                raise RuntimeError(f"method {cfg.method.name}: prediction of image {sample.image_id} is "
                                   f"{output.sem_seg.shape}, its image {gt.sem_seg.shape}")
            semantic.process(output.sem_seg, gt.sem_seg)
            per_image.record(image_index, semantic.confusion)
            if panoptic is not None:
                if output.pan_seg is None:
                    raise RuntimeError(f"method {cfg.method.name} returned no panoptic output on a panoptic stream")
                panoptic.process(output.pan_seg, output.segments, gt.pan_seg, gt.segments)
    stats = {"confusion": semantic.confusion}
    if panoptic is not None:
        stats.update({f"pq_{name}": values for name, values in panoptic.stats.items()})
    # the ids of the images scored, in validation order: which validation set the numbers are over
    scored = distributed.gather_sorted([(i, ctx.val.image_id(i)) for i, _ in per_image.parts])
    return {**{name: distributed.all_reduce_sum(values) for name, values in stats.items()}, **per_image.gathered(),
            "image_ids": np.array(scored, dtype=str)}


def data_record(ctx: RunContext, run_dir: Path) -> dict:
    """The manifest's `data`: the validation images the last step was scored on (count and a digest of their
    ids: the leaderboard never averages or pairs runs over different validation sets) and the images left out
    by data.on_error=skip (validation: exact; training: those rank 0 met)."""
    scored = [str(i) for i in np.load(run_dir / "stats" / f"step_{ctx.stream.num_steps - 1:03d}.npz")["image_ids"]]
    expected = [ctx.val.image_id(i) for i in range(validation_count(ctx.cfg, ctx.val))]
    kept = set(scored)
    return {"on_error": ctx.cfg.data.on_error, "validation_images": len(scored),
            "validation_digest": hashlib.sha256("\n".join(scored).encode()).hexdigest()[:16],
            "skipped": {"val": [i for i in expected if i not in kept],
                        "train": sorted(getattr(ctx.train, "skipped", {}))}}


def evaluate_initial(ctx: RunContext, writer: RunWriter | None) -> None:
    """Row -1 of R: the untouched method (before learning step 0) evaluated with every class of the vocabulary,
    persisted as raw statistics like a step. The reference of forward transfer and learning gain; for an
    open-vocabulary method it is the zero-shot model. The global RNG states are restored afterwards, so the
    steps that follow draw exactly what they would without it (in the worker's process under isolate=true)."""
    states = ctx.method.rng_states() if ctx.cfg.isolate else rng_states()
    started = time.perf_counter()
    stats = evaluate_step(ctx, ctx.train.vocabulary, step=-1)
    eval_seconds = time.perf_counter() - started
    (ctx.method.set_rng_states if ctx.cfg.isolate else set_rng_states)(states)
    if writer is not None:
        record = writer.write_initial(stats, eval_seconds)
        ctx.progress.log(f"initial evaluation (every class, before step 0): mIoU {record['miou_all']:.1f}  "
                         f"eval {eval_seconds:.1f}s")


def open_run(cfg: DictConfig, ctx: RunContext) -> tuple[RunWriter | None, Path, int]:
    """A new run folder, or (resume=RUN_DIR | auto) an interrupted one restored to its last completed step.
    Under torchrun only rank 0 gets a writer (None elsewhere); every rank restores the method state."""
    if not distributed.is_main():
        run_dir, first_step = distributed.broadcast_object(None)
        if first_step > 0:
            checkpoint = load_checkpoint(run_dir)
            ctx.method.load_state_dict(checkpoint["method"])
            set_rng_states(checkpoint["rng"])
        return None, run_dir, first_step
    writer, first_step = _open_run_main(cfg, ctx)
    distributed.broadcast_object((writer.run_dir, first_step))
    return writer, writer.run_dir, first_step


def _open_run_main(cfg: DictConfig, ctx: RunContext) -> tuple[RunWriter, int]:
    run_dir = find_resumable(cfg, ctx.stream) if cfg.resume == "auto" else (Path(cfg.resume) if cfg.resume else None)
    # provenance: computed here from the files on disk (under isolate=true no plugin code ever ran here); every
    # module imported from COVSEG_PATH or the method's entry points is listed, whether or not it registered it
    if cfg.isolate:
        source, plugins = isolated_provenance(cfg.method.name, ctx.method.started)
    else:
        source, plugins = None, plugin_records(cfg.method.name)
    # what the method was allowed to see: the leaderboard ranks sealed runs only
    protocol = {"ground_truth_access": ground_truth_access(cfg), "vocabulary": cfg.eval.vocabulary,
                "preset": ctx.protocol.describe(cfg.stream), "isolate": cfg.isolate, "sandbox": cfg.sandbox}
    return _open_writer(cfg, ctx, run_dir, {"source": source, "plugins": plugins, "protocol": protocol})


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
    ctx.method.load_state_dict(checkpoint["method"])
    set_rng_states(checkpoint["rng"])
    first_step = checkpoint["completed_step"] + 1
    ctx.progress.log(f"resume {run_dir}: steps 0..{first_step - 1} done, continuing at step {first_step}")
    return writer, first_step


def encoder_counters(method: ContinualMethod) -> dict:
    """Images through the frozen backbone(s) and prompts through the text encoder in the method's process."""
    segmenter = method.segmenter
    embedder = getattr(method, "embedder", None)
    disk = getattr(segmenter, "cache_dir", None)
    # per-image features read from / written to the disk cache: a run that mostly read them ran warm (faster)
    disk_caches = [cache for owner in (segmenter, embedder) for name in ("disk_cache", "dense_disk_cache")
                   if isinstance(cache := getattr(owner, name, None), FeatureCache)]
    return {"disk_cache": str(disk) if disk else None, "disk_cache_bytes": directory_bytes(disk),
            "disk_cache_hits": sum(cache.hits for cache in disk_caches),
            "disk_cache_writes": sum(cache.writes for cache in disk_caches),
            "backbone_images": getattr(segmenter, "backbone_images", None),
            "embedder_images": getattr(embedder, "backbone_images", None),  # DINOv2 embedders only
            "text_prompts": getattr(segmenter, "text_prompts", None)}


def encoder_passes(ctx: RunContext, first_step: int) -> dict:
    """`encoder_counters` against the distinct images the run touched (steps first_step..T): a bound the caches
    must keep, backbone passes <= distinct images."""
    training = {image_id for ids in ctx.stream.train_image_ids[first_step:] for image_id in ids}
    validation = len(distributed.shard(range(validation_count(ctx.cfg, ctx.val))))
    counters = ctx.method.encoder_counters() if ctx.cfg.isolate else encoder_counters(ctx.method)
    return {**counters, "distinct_images": len(training) + validation, "distinct_training_images": len(training)}


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
            if cfg.isolate:
                ctx.method.close()


def _run_steps(cfg: DictConfig, ctx: RunContext, writer: RunWriter | None, run_dir: Path, first_step: int) -> Path:
    stream, method = ctx.stream, ctx.method
    full_vocab = ctx.train.vocabulary
    if first_step == 0 and cfg.eval.initial:
        evaluate_initial(ctx, writer)
    for t in range(first_step, stream.num_steps):
        step = StepData.of_stream(t, stream.step_classes[t], stream.seen_classes(t), full_vocab, ctx.train,
                                  stream.train_indices[t], progress=ctx.progress.bar,
                                  relabel=ctx.protocol.training_labels)
        started = time.perf_counter()
        method.learn(step)
        learn_seconds = time.perf_counter() - started

        started = time.perf_counter()
        vocab = full_vocab if cfg.eval.vocabulary == "all" else full_vocab.subset(stream.seen_classes(t))
        stats = evaluate_step(ctx, vocab, t)
        eval_seconds = time.perf_counter() - started

        if writer is None:  # torchrun: only rank 0 writes
            continue
        record = writer.write_step(t, stats, learn_seconds, eval_seconds, method.memory_bytes(),
                                   method.trainable_parameters())
        save_checkpoint(writer.run_dir, t, method.state_dict())
        pq = f"  PQ(S_{t}) {record['pq_seen']:.1f}" if "pq_seen" in record else ""
        ctx.progress.log(f"step {t + 1}/{stream.num_steps}: mIoU(S_{t}) {record['miou_seen']:.1f}{pq}  "
                         f"learn {learn_seconds:.1f}s  eval {eval_seconds:.1f}s  memory {record['memory_bytes'] / 1e6:.2f} MB")
    if writer is None:
        return run_dir
    passes, data = encoder_passes(ctx, first_step), data_record(ctx, run_dir)
    for dataset in (ctx.train, ctx.val):
        if hasattr(dataset, "summary"):  # data.on_error=skip: say what was left out (rank 0's shard under torchrun)
            ctx.progress.log(dataset.summary())
    summary = writer.finish(passes, data)
    ctx.progress.log(writer.format_summary(summary))
    return run_dir
