"""run_stream(): for each step, learn -> evaluate on the validation split -> persist raw statistics; then the
stream's matrices and summary. Every derived number is recomputed from the persisted raw statistics."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from benchmark import distributed
from benchmark.config import data_root, method_config
from benchmark.data.types import IGNORE_LABEL, SegmentationDataset, Vocabulary
from benchmark.evaluation.semantic import SemanticEvaluator
from benchmark.method import METHODS, ContinualMethod, StepData
from benchmark.models import build_segmenter
from benchmark.reporting.progress import Progress
from benchmark.reporting.results import RunWriter
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
    method: ContinualMethod
    progress: Progress


def prepare_run(cfg: DictConfig) -> RunContext:
    seed_everything(cfg.seed)
    device = distributed.init_from_env(cfg.device)  # torchrun: join the process group, one device per rank
    progress = Progress(quiet=cfg.quiet or not distributed.is_main())
    root = data_root(cfg)
    with distributed.main_first():  # rank 0 fills the on-disk caches (demo data, stream files) first
        train = open_dataset(cfg.stream.dataset, "train", root, cfg.data.demo_seed, cfg.data.on_error)
        val = open_dataset(cfg.stream.dataset, "val", root, cfg.data.demo_seed, cfg.data.on_error)
        stream = build_stream(cfg.stream, train, cache_dir_for(root), progress.bar)
    segmenter = build_segmenter(cfg.model, seed=cfg.seed, device=device)
    method_cls = METHODS.get(cfg.method.name)
    method = method_cls(method_config(cfg), segmenter, train.vocabulary, seed=cfg.seed)
    return RunContext(cfg, stream, train, val, method, progress)


def evaluate_step(ctx: RunContext, vocab: Vocabulary, evaluator: SemanticEvaluator, step: int) -> None:
    """Predict every validation image with `vocab`; ground truth outside `vocab` is ignored.
    Under torchrun each rank predicts its shard of the images and the confusion matrices are summed."""
    cfg = ctx.cfg
    count = len(ctx.val) if cfg.eval.max_images is None else min(cfg.eval.max_images, len(ctx.val))
    indices = distributed.shard(range(count))
    in_vocab = np.zeros(len(ctx.train.vocabulary) + 1, dtype=bool)
    in_vocab[vocab.ids] = True
    batch_size = cfg.eval.batch_size
    for start in ctx.progress.bar(range(0, len(indices), batch_size), desc=f"eval step {step}",
                                  total=(len(indices) + batch_size - 1) // batch_size):
        batch = [s for s in (ctx.val.load(i) for i in indices[start:start + batch_size]) if s is not None]
        outputs = ctx.method.predict(batch, vocab)
        for sample, output in zip(batch, outputs):
            labels = sample.sem_seg
            gt = np.where(in_vocab[np.minimum(labels, len(in_vocab) - 1)] & (labels != IGNORE_LABEL), labels, IGNORE_LABEL)
            evaluator.process(output.sem_seg, gt)
    evaluator.confusion = distributed.all_reduce_sum(evaluator.confusion)


def run_stream(cfg: DictConfig) -> Path:
    """Run one method over one stream; returns the run folder. Under torchrun only rank 0 writes it."""
    torch.set_num_threads(max(1, torch.get_num_threads()))
    ctx = prepare_run(cfg)
    stream, method = ctx.stream, ctx.method
    writer = RunWriter.create(cfg, stream) if distributed.is_main() else None
    run_dir = distributed.broadcast_object(writer.run_dir if writer is not None else None)
    if writer is not None:
        writer.manifest["world_size"] = distributed.world_size()  # processes that shared the work (timings)
    if writer is not None:
        ctx.progress.log(f"run {writer.run_dir}  ({stream.name}: {stream.num_steps} steps, "
                         f"{len(stream.vocabulary)} classes; method {cfg.method.name})")
    full_vocab = ctx.train.vocabulary
    for t in range(stream.num_steps):
        step = StepData(t, stream.step_classes[t], stream.seen_classes(t), full_vocab, ctx.train,
                        stream.train_indices[t], progress=ctx.progress.bar)
        started = time.perf_counter()
        method.learn(step)
        learn_seconds = time.perf_counter() - started

        started = time.perf_counter()
        vocab = full_vocab if cfg.eval.vocabulary == "all" else full_vocab.subset(stream.seen_classes(t))
        evaluator = SemanticEvaluator(len(full_vocab))
        evaluate_step(ctx, vocab, evaluator, t)
        eval_seconds = time.perf_counter() - started

        if writer is None:  # torchrun: only rank 0 writes
            continue
        record = writer.write_step(t, evaluator.confusion, learn_seconds, eval_seconds, method.memory_bytes(),
                                   method.trainable_parameters())
        ctx.progress.log(f"step {t + 1}/{stream.num_steps}: mIoU(S_{t}) {record['miou_seen']:.1f}  "
                         f"learn {learn_seconds:.1f}s  eval {eval_seconds:.1f}s  memory {record['memory_bytes'] / 1e6:.2f} MB")
    if writer is None:
        return run_dir
    for dataset in (ctx.train, ctx.val):
        if hasattr(dataset, "summary"):  # data.on_error=skip: say what was left out (rank 0's shard under torchrun)
            ctx.progress.log(dataset.summary())
    summary = writer.finish()
    ctx.progress.log(writer.format_summary(summary))
    return writer.run_dir
