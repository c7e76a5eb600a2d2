"""`python -m benchmark perf eval`: evaluator throughput against the references the field uses, same run.

- semantic: `SemanticEvaluator` (its C kernel, and its numpy fallback) vs detectron2's `SemSegEvaluator`
  accumulation loop (numpy bincount per image) and torchmetrics' `MulticlassJaccardIndex`, on the same int64
  label maps (default 847 classes, 512x683, 10% of predicted pixels scattered at random).
- panoptic: `PanopticEvaluator` vs panopticapi's per-image `pq_compute_single_core` logic (ported in
  benchmark/perf/references.py; panopticapi is not on PyPI), in memory (maps decoded once) and from files (PNG + JSON, decoding included).
Every pair of results is compared and the max abs difference printed.

The synthetic label maps here are also what the tests check the evaluators on.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from benchmark.data.readers import id_to_rgb
from benchmark.data.types import IGNORE_LABEL, SegmentInfo
from benchmark.errors import UserError
from benchmark.perf.references import (detectron2_confusion, detectron2_semseg_metrics, panoptic_as_panopticapi,
                                       panopticapi_image_stats, panopticapi_pq_average, panopticapi_pq_compute)

# -------------------------------------------------------------------------------------------- synthetic data
def synthetic_semantic(rng: np.random.Generator, height: int, width: int, num_classes: int,
                       noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(pred, gt) int64 label maps made of blocks (as real maps are piecewise constant), gt with ignore
    regions, pred = gt with relabelled blocks and `noise` of random pixels."""
    def blocks() -> np.ndarray:
        size = int(rng.integers(8, 33))
        coarse = rng.integers(0, num_classes, (height // size + 1, width // size + 1))
        return np.repeat(np.repeat(coarse, size, 0), size, 1)[:height, :width]

    gt = blocks()
    gt[blocks() < num_classes // 10] = IGNORE_LABEL
    pred = np.where(blocks() < num_classes // 5, blocks(), np.where(gt == IGNORE_LABEL, blocks(), gt))
    speckle = rng.random((height, width)) < noise
    pred[speckle] = rng.integers(0, num_classes, int(speckle.sum()))
    return pred.astype(np.int64), gt.astype(np.int64)


def _unique_ids(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.choice(np.arange(1, 256**3, dtype=np.int64), size=count, replace=False)


def synthetic_panoptic(rng: np.random.Generator, height: int, width: int, isthing: Sequence[bool],
                       num_things: int = 20) -> tuple[np.ndarray, list[SegmentInfo]]:
    """A COCO-like panoptic ground truth: a stuff layout of blocks, thing rectangles on top (about 10% crowd,
    several of one class at times), VOID rectangles and VOID outlines around some things; ids as large as
    COCO's RGB ids."""
    things, stuff = np.flatnonzero(isthing), np.flatnonzero(~np.asarray(isthing, dtype=bool))
    palette = rng.choice(stuff, size=min(6, stuff.size), replace=False)
    block = int(rng.integers(48, 129))
    coarse = rng.integers(0, palette.size, (height // block + 1, width // block + 1))
    layout = np.repeat(np.repeat(coarse, block, 0), block, 1)[:height, :width]
    ids = _unique_ids(rng, palette.size + num_things)
    pan = ids[layout]
    segments = [SegmentInfo(int(ids[k]), int(palette[k]), False, False) for k in range(palette.size)]
    for n in range(num_things):
        h, w = int(rng.integers(height // 20, height // 3)), int(rng.integers(width // 20, width // 3))
        y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        seg_id = int(ids[palette.size + n])
        pan[y:y + h, x:x + w] = seg_id
        if rng.random() < 0.3:
            pan[y:y + h, x] = pan[y:y + h, x + w - 1] = pan[y, x:x + w] = pan[y + h - 1, x:x + w] = 0
        segments.append(SegmentInfo(seg_id, int(rng.choice(things)), bool(rng.random() < 0.1), True))
    for _ in range(3):
        h, w = int(rng.integers(2, height // 8)), int(rng.integers(2, width // 8))
        y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        pan[y:y + h, x:x + w] = 0
    present = set(np.unique(pan).tolist())
    return pan, [s for s in segments if s.id in present]


def perturb_panoptic(rng: np.random.Generator, pan: np.ndarray, segments: Sequence[SegmentInfo],
                     num_classes: int, shift: int = 4, drop: float = 0.15, relabel: float = 0.1,
                     split: float = 0.15, extra: int = 3) -> tuple[np.ndarray, list[SegmentInfo]]:
    """A prediction from a ground truth: shifted map, dropped (VOID), relabelled and split segments, crowd
    regions predicted as ordinary segments, a few spurious rectangles, fresh ids."""
    dy, dx = (int(v) for v in rng.integers(-shift, shift + 1, 2))
    source = np.roll(pan, (dy, dx), axis=(0, 1))
    pred = np.zeros_like(pan)
    new_ids = iter(_unique_ids(rng, 2 * len(segments) + extra).tolist())
    out: list[SegmentInfo] = []
    columns = np.broadcast_to(np.arange(pan.shape[1]), pan.shape)
    for s in segments:
        mask = source == s.id
        if not mask.any() or rng.random() < drop:
            continue
        category = int(rng.integers(0, num_classes)) if rng.random() < relabel else s.category_id
        first = next(new_ids)
        pred[mask] = first
        out.append(SegmentInfo(first, category, False, s.isthing))
        if rng.random() < split:
            right = mask & (columns > np.median(columns[mask]))
            if right.any() and (mask & ~right).any():
                second = next(new_ids)
                pred[right] = second
                out.append(SegmentInfo(second, category, False, s.isthing))
    for _ in range(extra):
        h, w = int(rng.integers(4, pan.shape[0] // 4)), int(rng.integers(4, pan.shape[1] // 4))
        y, x = int(rng.integers(0, pan.shape[0] - h)), int(rng.integers(0, pan.shape[1] - w))
        seg_id = next(new_ids)
        pred[y:y + h, x:x + w] = seg_id
        out.append(SegmentInfo(seg_id, int(rng.integers(0, num_classes)), False, False))
    present = set(np.unique(pred).tolist())
    return pred, [s for s in out if s.id in present]


def write_coco_panoptic(folder: Path, name: str, images: list[tuple[str, np.ndarray, list[SegmentInfo]]],
                        isthing: Sequence[bool]) -> tuple[Path, Path]:
    """Write `name`.json + `name`/*.png in COCO panoptic format; COCO category id = contiguous id + 1."""
    png_dir = Path(folder) / name
    png_dir.mkdir(parents=True, exist_ok=True)
    annotations = []
    for image_id, pan, segments in images:
        Image.fromarray(id_to_rgb(pan)).save(png_dir / f"{image_id}.png")
        areas = dict(zip(*np.unique(pan, return_counts=True)))
        annotations.append({
            "image_id": image_id,
            "file_name": f"{image_id}.png",
            "segments_info": [{"id": s.id, "category_id": s.category_id + 1, "iscrowd": int(s.iscrowd),
                               "area": int(areas.get(s.id, 0))} for s in segments],
        })
    categories = [{"id": c + 1, "name": f"class{c}", "isthing": int(t)} for c, t in enumerate(isthing)]
    images_info = [{"id": image_id, "file_name": f"{image_id}.jpg"} for image_id, _, _ in images]
    json_path = Path(folder) / f"{name}.json"
    json_path.write_text(json.dumps({"images": images_info, "annotations": annotations, "categories": categories}))
    return json_path, png_dir


# ---------------------------------------------------------------------------------------------------- timing
def _best_seconds(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _max_abs_diff(a: dict, b: dict) -> float:
    """Max |a - b| over the numbers of two panopticapi-shaped result dicts (NaN = NaN)."""
    diffs = [0.0]
    for group in ("All", "Things", "Stuff"):
        for key in ("pq", "sq", "rq", "n"):
            x, y = a[group][key], b[group][key]
            diffs.append(0.0 if (np.isnan(x) and np.isnan(y)) else abs(x - y))
    for category, values in b["per_class"].items():
        diffs.extend(abs(a["per_class"][category][k] - values[k]) for k in ("pq", "sq", "rq"))
    return float(max(diffs))


def bench_semantic(args: argparse.Namespace) -> list[tuple]:
    import torch

    try:
        from torchmetrics.classification import MulticlassJaccardIndex
    except ImportError:
        raise UserError("perf eval compares against torchmetrics, which is not installed: "
                        "pip install 'covseg-bench[perf]'") from None

    from benchmark.evaluation import semantic
    from benchmark.evaluation.semantic import SemanticEvaluator

    rng = np.random.default_rng(args.seed)
    K = args.classes
    pairs = [synthetic_semantic(rng, args.height, args.width, K, noise=args.noise) for _ in range(args.images)]
    tensors = [(torch.from_numpy(p)[None], torch.from_numpy(g)[None]) for p, g in pairs]
    megapixels = args.images * args.height * args.width / 1e6

    ours = SemanticEvaluator(K, miou_mode="legacy")
    d2_state = {}
    metric = MulticlassJaccardIndex(num_classes=K, ignore_index=IGNORE_LABEL, average="macro", validate_args=False)

    def run_ours() -> None:
        ours.reset()
        for p, g in pairs:
            ours.process(p, g)

    def run_d2() -> None:
        d2_state["conf"] = np.zeros((K + 1, K + 1), dtype=np.int64)
        for p, g in pairs:
            d2_state["conf"] += detectron2_confusion(p, g, K)

    def run_tm() -> None:
        metric.reset()
        for p, g in tensors:
            metric.update(p, g)

    kernel = semantic._kernel
    if kernel is not None:  # the numpy fallback too, first, so the matrix checked below is the kernel's
        try:
            semantic._kernel = None
            t_numpy = _best_seconds(run_ours, args.repeats)
        finally:
            semantic._kernel = kernel
    t_ours, t_d2 = _best_seconds(run_ours, args.repeats), _best_seconds(run_d2, args.repeats)
    t_tm = _best_seconds(run_tm, max(1, args.repeats // 2))
    d2_metrics = detectron2_semseg_metrics(d2_state["conf"], "v0.6")
    conf_diff = int(np.abs(ours.confusion - d2_state["conf"][:-1, :-1].T).max())
    miou_diff = max(abs(ours.evaluate()["miou"] - d2_metrics["miou"]), abs(ours.evaluate()["miou"] - 100 * float(metric.compute())))
    check = f"confusion {conf_diff}, legacy mIoU vs d2 v0.6 / torchmetrics {miou_diff:.1e}"
    path = "C kernel" if kernel is not None else "numpy path: kernel not built"
    rows = [(f"semantic {K} cls {args.height}x{args.width}", f"SemanticEvaluator ({path})", megapixels / t_ours,
             "MP/s", 1.0, check)]
    if kernel is not None:
        rows.append(("", "SemanticEvaluator (numpy path)", megapixels / t_numpy, "MP/s", t_numpy / t_ours, ""))
    return rows + [
        ("", "detectron2 loop", megapixels / t_d2, "MP/s", t_d2 / t_ours, ""),
        ("", "torchmetrics Jaccard", megapixels / t_tm, "MP/s", t_tm / t_ours, ""),
    ]


def bench_panoptic(args: argparse.Namespace) -> list[tuple]:
    from benchmark.evaluation.panoptic import PanopticEvaluator
    from benchmark.evaluation.tools import pq_compute

    rng = np.random.default_rng(args.seed)
    isthing = np.arange(args.pq_classes) < round(args.pq_classes * 80 / 133)
    images = []
    for _ in range(args.pq_images):
        gt_pan, gt_segments = synthetic_panoptic(rng, args.pq_height, args.pq_width, isthing)
        pred_pan, pred_segments = perturb_panoptic(rng, gt_pan, gt_segments, args.pq_classes)
        images.append((pred_pan, pred_segments, gt_pan, gt_segments))
    categories = {c: {"id": c, "isthing": int(t)} for c, t in enumerate(isthing)}
    reference_inputs = [(g, panoptic_as_panopticapi(gs, g), p, panoptic_as_panopticapi(ps)) for p, ps, g, gs in images]

    evaluator = PanopticEvaluator(isthing)
    reference: dict = {}

    def run_ours() -> None:
        evaluator.reset()
        for image in images:
            evaluator.process(*image)

    def run_reference() -> None:
        total: dict = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0, "iou": 0.0})
        for g, gs, p, ps in reference_inputs:
            for label, s in panopticapi_image_stats(g, gs, p, ps, categories).items():
                for key in ("tp", "fp", "fn", "iou"):
                    total[label][key] += s[key]
        reference["results"] = panopticapi_pq_average(total, categories)

    t_ours, t_ref = _best_seconds(run_ours, args.repeats), _best_seconds(run_reference, args.repeats)
    memory_diff = _max_abs_diff(evaluator.evaluate(), reference["results"])
    rows = [
        (f"PQ in memory {args.pq_height}x{args.pq_width}", "PanopticEvaluator", args.pq_images / t_ours, "img/s", 1.0,
         f"max |diff| {memory_diff:.1e}"),
        ("", "panopticapi logic", args.pq_images / t_ref, "img/s", t_ref / t_ours, ""),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        gt_json, gt_dir = write_coco_panoptic(Path(tmp), "gt", [(f"{i:06d}", g, gs) for i, (_, _, g, gs) in
                                                              enumerate(images)], isthing)
        pred_json, pred_dir = write_coco_panoptic(Path(tmp), "pred", [(f"{i:06d}", p, ps) for i, (p, ps, _, _) in
                                                                    enumerate(images)], isthing)
        files: dict = {}
        t_files = _best_seconds(lambda: files.update(ours=pq_compute(gt_json, pred_json, gt_dir, pred_dir)), args.repeats)
        t_files_ref = _best_seconds(lambda: files.update(ref=panopticapi_pq_compute(gt_json, pred_json, gt_dir, pred_dir)),
                                    args.repeats)
    # the tool keys per_class by the JSON's category ids, which are contiguous id + 1 here, as in the reference
    files_diff = _max_abs_diff(files["ours"], files["ref"])
    rows += [
        ("PQ from files (PNG+JSON)", "benchmark pq", args.pq_images / t_files, "img/s", 1.0,
         f"max |diff| {files_diff:.1e}"),
        ("", "panopticapi pq_compute 1 core", args.pq_images / t_files_ref, "img/s", t_files_ref / t_files, ""),
    ]
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark perf eval", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20, help="semantic label maps")
    parser.add_argument("--classes", type=int, default=847)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=683)
    parser.add_argument("--noise", type=float, default=0.1,
                        help="fraction of predicted pixels set to a random class (scattered errors are the slow case)")
    parser.add_argument("--pq-images", type=int, default=20, help="panoptic images")
    parser.add_argument("--pq-classes", type=int, default=133)
    parser.add_argument("--pq-height", type=int, default=480)
    parser.add_argument("--pq-width", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions; the best is reported")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = bench_semantic(args) + bench_panoptic(args)
    header = ("workload", "implementation", "throughput", "unit", "ours faster by", "agreement")
    print(f"{header[0]:32s} {header[1]:30s} {header[2]:>10s} {header[3]:5s} {header[4]:>14s}  {header[5]}")
    for workload, name, rate, unit, ratio, check in rows:
        print(f"{workload:32s} {name:30s} {rate:10.1f} {unit:5s} {ratio:13.2f}x  {check}")
    return 0
