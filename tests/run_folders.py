"""Run folders as RunWriter leaves them (only the files the leaderboard reads), made by hand for the tests of the
leaderboard, provenance, plots and the CLI: `make_run` one run of a method configuration, `twenty_variants` a results
folder of 20 labelled variants of two seeds each (every cell with a mean and a std)."""
import csv
import json
from pathlib import Path

import yaml

from benchmark.config import CONFIG_DIR

KNN_DEFAULTS = yaml.safe_load((CONFIG_DIR / "method" / "knnclip.yaml").read_text())


def make_run(results: Path, run_id: str, method: dict, final: float, *, seed: int = 0, order_seed: int = 0,
             stream_hash: str = "hash-o0", version: int = 1, status: str = "complete", stream: str = "toy",
             max_images: int | None = None, memory: tuple = (1000, 3000), learn: tuple = (1.0, 2.0),
             evaluation: tuple = (3.0, 4.0), seen: tuple | None = None, pq_final: float | None = None,
             manifest_extra: dict | None = None, forgetting: float = 2.0, order: str = "random") -> Path:
    """A run folder as RunWriter leaves it (only the files the leaderboard reads); `manifest_extra` adds or
    replaces manifest keys (method_source, protocol, git)."""
    run_dir = results / stream / method["name"] / run_id
    run_dir.mkdir(parents=True)
    config = {
        "method": method, "seed": seed,
        "stream": {"name": stream, "dataset": "demo", "num_steps": 2, "order": order, "order_seed": order_seed,
                   "mode": "overlap", "panoptic": pq_final is not None, "version": version},
        "model": {"name": "tiny_random", "kind": "open_clip", "arch": "covseg-tiny-vit", "pretrained": None,
                  "input_size": 224, "proposals": "superpixel", "superpixel_segments": 150,
                  "superpixel_compactness": 30.0, "templates": "single", "batch_size": 8},
        "data": {"demo_seed": 0}, "eval": {"vocabulary": "seen", "miou_mode": "present", "batch_size": 8,
                                          "max_images": max_images},
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    manifest = {"run_id": run_id, "status": status, "stream": stream, "stream_version": version,
                "stream_hash": stream_hash, "method": method["name"], "git": {"commit": "abc", "dirty": False},
                **(manifest_extra or {})}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    metrics = {"miou": {"final": final, "avg_incremental": final + 5, "forgetting_max": forgetting, "bwt": -2.0,
                        "old": final - 1, "new": final + 1}}
    if pq_final is not None:
        metrics["pq"] = {"final": pq_final}
    summary = {"stream": stream, "method": method["name"], "run_id": run_id, "num_steps": 2, "metrics": metrics,
               "seen": {"miou": list(seen or (final + 10, final))}, "memory_bytes": list(memory),
               "seconds": {"learn": list(learn), "eval": list(evaluation)}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def read_csv(results: Path) -> list[dict]:
    with open(results / "leaderboard.csv") as handle:
        return list(csv.DictReader(handle))


LABELS = ["zero-shot", "kNN-CLIP", "kNN-CLIP k=32 λ=0.5 with a deliberately long label that has to wrap",
          "avalanche/EWC λ=1000", "fine-tuning", "joint training (upper bound)",
          "replay_buffer_with_a_very_long_identifier_and_no_spaces_at_all"]


def make_variant_run(results: Path, index: int, seed: int, final: float) -> Path:
    """A complete run folder of the variant `index` (its own name=), with every score the tables show."""
    method = ["zeroshot", "knnclip", "finetune", "ewc"][index % 4]
    run_dir = results / "toy" / method / f"r{index}-{seed}"
    run_dir.mkdir(parents=True)
    label = LABELS[index] if index < len(LABELS) else f"{method} variant {index}"
    config = {"method": {"name": method, "k": index}, "seed": seed, "name": label,
              "stream": {"name": "toy", "dataset": "demo", "num_steps": 2, "order": "random", "order_seed": 0},
              "model": {"name": "tiny_random"}, "data": {"demo_seed": 0},
              "eval": {"vocabulary": "seen", "miou_mode": "present", "max_images": None}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / "manifest.json").write_text(json.dumps({"status": "complete", "stream": "toy", "stream_version": 1,
                                                       "stream_hash": "h", "method": method}))
    metrics = {"final": final, "avg_incremental": final + 3.25, "forgetting_max": 12.5 - index / 3,
               "bwt": -10.125, "old": final - 1, "new": final + 1, "previous": final, "last": final + 2}
    summary = {"num_steps": 2, "metrics": {"miou": metrics}, "seen": {"miou": [final + 1, final]},
               "memory_bytes": [0, 1234567 * index], "seconds": {"learn": [1, 1], "eval": [1, 1]}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def twenty_variants(results: Path) -> Path:
    """20 variants of two runs each (so every cell has a ± std)."""
    for index in range(20):
        for seed in (0, 1):
            make_variant_run(results, index, seed, 10.0 + index * 3.7 + seed * 1.3)
    return results
