"""`python -m benchmark perf stream`: whole streams at scale. Runs the demo stream at `--scale` x its default size
(data.demo_scale) for each chosen method, each in its own process (so peak RSS is the method's own) with its own
empty disk cache, and prints per method: learn and eval seconds per step, eval time over steps 2..T relative to
zero-shot's in the same invocation, final mIoU (and its difference to exact search for kNN-CLIP runs, with
`--exact`), peak RSS and the in-memory caches' share of it, backbone passes against the distinct images the run
touched, bytes per image of every in-memory cache, the database's bytes per entry and index=auto's majority
agreement with exact search.

Then it extrapolates to the real datasets with the per-image sizes of the real ViT-B/16 @ 448 architecture
(open_clip ViT-B-16, random weights: sizes do not depend on the weights), measured on one image of each
dataset's typical size: validation state in memory (proposal codes + float16 embeddings), training dense
features (float16, the disk cache / training store), and the database at `--segments-per-image` entries per
training image (an assumption, printed).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmark.errors import UserError
from benchmark.perf import timed_run
from benchmark.run.manifest import Manifest

DATASETS = {  # train / val images and a typical image size (H, W) of the real datasets
    "A-847": (25_574, 2_000, (512, 683)),
    "PC-459": (4_996, 5_104, (375, 500)),
    "COCO": (118_287, 5_000, (480, 640)),
}


def child_main(args: argparse.Namespace) -> int:
    """One method's run in this process; prints one JSON line with what the parent tabulates."""
    overrides = [f"method={args.child}", "stream=demo_4steps", f"data.demo_scale={args.scale}",
                 f"data.root={args.data_root}", f"results_dir={args.work}/results", "quiet=true",
                 f"model.cache_dir={args.work}/cache-{args.child}-{os.getpid()}", *args.overrides]
    run_dir, ctx, wall = timed_run(overrides)
    summary = json.loads((run_dir / "summary.json").read_text())
    manifest = Manifest.read(run_dir)
    method = ctx.host.method  # an in-process run: the method itself
    database = getattr(method, "database", None)
    report = {
        "label": args.label, "wall_s": wall, "learn_s": summary["seconds"]["learn"], "eval_s": summary["seconds"]["eval"],
        "final_miou": summary["metrics"]["miou"]["final"], "memory_bytes": summary["memory_bytes"][-1],
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "passes": manifest.passes,
        "caches": {role: cache.report() for role, cache in method.segmenter.memory_caches.items()},
        "database_entries": len(database) if database is not None else None,
        "index_reports": list(getattr(database, "index_reports", [])),
    }
    print("PERF_STREAM " + json.dumps(report))
    return 0


def run_child(method: str, label: str, overrides: list[str], args: argparse.Namespace, work: Path) -> dict:
    command = [sys.executable, "-m", "benchmark", "perf", "stream", "--child", method, "--label", label,
               "--scale", str(args.scale), "--data-root", str(args.data_root), "--work", str(work), "--", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    line = next((line for line in done.stdout.splitlines() if line.startswith("PERF_STREAM ")), None)
    if done.returncode or line is None:
        raise UserError(f"perf stream: the {label} run failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return json.loads(line[len("PERF_STREAM "):])


def real_model_sizes() -> dict:
    """Per-image bytes of the real ViT-B/16 @ 448 (random weights) on one image of each dataset's typical size."""
    import torch
    from omegaconf import OmegaConf

    from benchmark.config import CONFIG_DIR, ModelConfig
    from benchmark.data.types import ImageInput
    from benchmark.models.segmenter import OpenVocabSegmenter

    config = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(CONFIG_DIR / "model" / "vit_b16_openai.yaml"),
                             {"pretrained": None})
    segmenter = OpenVocabSegmenter(config, seed=0)
    from PIL import Image

    from benchmark.data.demo import _class_textures, generate_image

    scene = generate_image(0, 0, _class_textures(0))[0]  # textured regions: SLIC finds its usual ~150 superpixels
    sizes = {}
    for name, (_, _, (height, width)) in DATASETS.items():
        image = np.array(Image.fromarray(scene).resize((width, height), Image.BILINEAR))
        features = segmenter.image_features([ImageInput(f"{name}-probe", image)])[0]
        sizes[name] = {"validation_state": features.nbytes, "proposals": len(features.stored_embeddings),
                       "proposal_codes": features.proposal_codes.nbytes}
    dense = segmenter.dense_features([image])[0].to(segmenter.storage_dtype)
    tokens = segmenter.tokens_before_last_block([image])[0].to(segmenter.storage_dtype)
    common = {"dense": dense.element_size() * dense.nelement(), "tokens": tokens.element_size() * tokens.nelement(),
              "embed_dim": int(segmenter.embed_dim), "dense_shape": list(dense.shape)}
    return {"per_dataset": sizes, **common, "dtype": str(torch.float16)}


def format_runs(runs: list[dict]) -> str:
    import pandas as pd

    reference = next((r for r in runs if r["label"] == "zeroshot"), None)
    exact = next((r for r in runs if r["label"] == "knnclip exact"), None)
    rows = []
    for run in runs:
        later = sum(run["eval_s"][1:])
        passes = run["passes"]
        row = {
            "method": run["label"],
            "learn s/step": np.mean(run["learn_s"]), "eval s/step": np.mean(run["eval_s"]),
            "eval 2..T vs zeroshot": later / sum(reference["eval_s"][1:]) if reference else float("nan"),
            "final mIoU": run["final_miou"],
            "vs exact": run["final_miou"] - exact["final_miou"] if exact and run["database_entries"] else float("nan"),
            "peak RSS MB": run["peak_rss"] / 2**20,
            # the part of RSS that grows with the data until model.cache_memory_mb (per cache) is reached
            "caches peak MB": sum(cache["peak_bytes"] for cache in run["caches"].values()) / 2**20,
            "backbone/distinct": f"{passes['backbone_images'] + (passes['embedder_images'] or 0)}/{passes['distinct_images']}",
        }
        for role, cache in run["caches"].items():
            row[f"{role} cache kB/entry"] = cache["peak_bytes"] / max(cache["entries"], 1) / 1e3 if cache["entries"] else 0.0
        entries = run["database_entries"]
        row["DB entries"] = entries if entries is not None else "-"
        row["DB B/entry"] = run["memory_bytes"] / entries if entries else float("nan")
        agreement = [r["majority_agreement"] for r in run["index_reports"]]
        row["auto agreement"] = min(agreement) if agreement else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2f}")


def format_extrapolation(sizes: dict, segments_per_image: int) -> str:
    import pandas as pd

    dim = sizes["embed_dim"]
    flat_entry = 4 * dim + 4  # float32 vector + int32 label
    auto_entry = dim + 8 + 2 * dim + 4  # SQ8 codes + IVF id + float16 copy + label
    rows = []
    for name, (train, val, (height, width)) in DATASETS.items():
        per = sizes["per_dataset"][name]
        entries = train * segments_per_image
        rows.append({
            "dataset": name, "image": f"{height}x{width}", "proposals": per["proposals"],
            "val state MB/img": per["validation_state"] / 1e6, "val cache GB": val * per["validation_state"] / 1e9,
            "train dense MB/img": sizes["dense"] / 1e6, "train store GB": train * sizes["dense"] / 1e9,
            "DB entries": entries, "DB Flat GB": entries * flat_entry / 1e9, "DB auto GB": entries * auto_entry / 1e9,
        })
    return pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark perf stream", description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=4, help="data.demo_scale of the demo stream (default 4)")
    parser.add_argument("--methods", default="zeroshot,knnclip,finetune,joint",
                        help="methods, comma separated (zeroshot is the eval-time reference; default "
                             "zeroshot,knnclip,finetune,joint)")
    parser.add_argument("--exact", action="store_true", help="also run knnclip with exact search (method.index=Flat)")
    parser.add_argument("--no-extrapolation", action="store_true", help="skip the ViT-B/16 @ 448 size probe")
    parser.add_argument("--segments-per-image", type=int, default=10,
                        help="database entries per training image assumed in the extrapolation (default 10)")
    parser.add_argument("--data-root", default=None, help="where the scaled demo is generated (default: a temporary folder)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--label", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="config overrides for every run, after --")
    args = parser.parse_args(argv)
    if args.scale < 1:
        raise UserError(f"--scale={args.scale} must be a positive integer")
    if args.child:
        return child_main(args)
    methods = [m for m in args.methods.split(",") if m]
    with tempfile.TemporaryDirectory(prefix="covseg-perf-stream-") as work:
        args.data_root = Path(args.data_root or Path(work) / "datasets")
        from benchmark.data.demo import ensure_demo_dataset

        started = time.perf_counter()
        ensure_demo_dataset(args.data_root, 0, args.scale)
        print(f"demo_4steps at data.demo_scale={args.scale}: {300 * args.scale} train / {100 * args.scale} val images "
              f"(generated in {time.perf_counter() - started:.0f} s); OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}; "
              f"overrides: {' '.join(args.overrides) or 'none'}", flush=True)
        runs = []
        plan = [(m, m, []) for m in methods]
        if args.exact and "knnclip" in methods:
            plan.append(("knnclip", "knnclip exact", ["method.index=Flat"]))
        for method, label, extra in plan:
            runs.append(run_child(method, label, [*args.overrides, *extra], args, Path(work)))
            print(f"  {label}: {runs[-1]['wall_s']:.0f} s", flush=True)
        print(format_runs(runs))
        for run in runs:
            for report in run["index_reports"]:
                print(f"  {run['label']}: index=auto trained {report['index']} on {report['entries']} entries in "
                      f"{report['train_seconds']:.1f} s, majority agreement with exact {report['majority_agreement']:.3f}")
    if not args.no_extrapolation:
        sizes = real_model_sizes()
        print(f"\nextrapolation with ViT-B/16 @ 448 (random weights; float16 storage; dense {sizes['dense_shape']} = "
              f"{sizes['dense'] / 1e6:.2f} MB, last-block tokens {sizes['tokens'] / 1e6:.2f} MB per image; "
              f"{args.segments_per_image} database entries per training image assumed)")
        print(format_extrapolation(sizes, args.segments_per_image))
    return 0
