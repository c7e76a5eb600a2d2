"""`python -m benchmark report RUN_DIR [--miou-mode present|legacy]`: recompute every metric and table of a
finished (or interrupted) run from its raw per-step statistics, rewrite summary.json, the matrix CSVs and
the plots, and print them. A new metric therefore never needs a rerun.

`--fwt-baseline OTHER_RUN_DIR` also prints GEM's forward transfer with the other run's initial evaluation as
GEM's baseline b (GEM: the model at random initialisation); both runs must share the stream (hash)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from benchmark.errors import UserError
from benchmark.evaluation.stream_metrics import forward_transfer_gem
from benchmark.evaluation.summary import build_summary, format_summary, vocabulary_names, write_run_results
from benchmark.plugins import load_foreign
from benchmark.run.manifest import MANIFEST_FILE, Manifest
from benchmark.run.stats import load_confusions


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark report", description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--miou-mode", choices=["present", "legacy"], default=None,
                        help="default: the run's eval.miou_mode")
    parser.add_argument("--fwt-baseline", type=Path, default=None,
                        help="a run of the same stream whose initial evaluation is GEM's forward-transfer baseline")
    args = parser.parse_args(argv)
    load_foreign()  # stream metrics of one's own (COVSEG_PATH, entry points) are recomputed too
    run_dir = args.run_dir
    manifest_path = run_dir / MANIFEST_FILE
    if not manifest_path.is_file() or not (run_dir / "stats").is_dir():
        raise UserError(f"{run_dir} is not a run folder (expected manifest.json and stats/)")
    manifest = read_manifest(manifest_path)
    if manifest.step_classes is None:
        raise UserError(f"{manifest_path} has no step_classes (written by an older version); rerun the stream")
    run_mode = OmegaConf.load(run_dir / "config.yaml").eval.miou_mode
    miou_mode = args.miou_mode or run_mode
    if manifest.status == "complete" and miou_mode == run_mode:  # another mode is only printed
        confusions = load_confusions(run_dir)
        names = vocabulary_names(manifest.vocabulary, len(confusions[0]) if confusions else 0)
        summary, _ = write_run_results(run_dir, manifest.step_classes, names, manifest.stream, manifest.method,
                                       miou_mode)
    else:
        summary = build_summary(run_dir, manifest.step_classes, manifest.stream, manifest.method, miou_mode)
    if manifest.status != "complete" or summary["num_steps"] != len(summary["memory_bytes"]):
        print(f"note: {run_dir} is an unfinished run ({manifest.state_line()}) holding "
              f"{len(summary['memory_bytes'])} of {summary['num_steps']} steps")
    print(format_summary(summary, run_dir))
    if args.fwt_baseline is not None:
        for metric, value in gem_forward_transfer(summary, manifest, args.fwt_baseline, miou_mode).items():
            print(f"forward transfer (GEM, baseline: initial evaluation of {args.fwt_baseline}), {metric}: {value:.2f}")
    return 0


def read_manifest(path: Path) -> Manifest:
    try:
        return Manifest.read(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} ({exc})") from None


def gem_forward_transfer(summary: dict, manifest: Manifest, baseline_dir: Path, miou_mode: str) -> dict[str, float]:
    """Per metric: GEM's forward transfer of `summary`'s matrix against the baseline run's initial row."""
    path = baseline_dir / MANIFEST_FILE
    if not path.is_file():
        raise UserError(f"--fwt-baseline {baseline_dir} is not a run folder (no manifest.json)")
    baseline_manifest = read_manifest(path)
    if baseline_manifest.stream_hash != manifest.stream_hash:
        raise UserError(f"--fwt-baseline {baseline_dir} ran stream {baseline_manifest.stream} (hash "
                        f"{baseline_manifest.stream_hash}), not this run's (hash {manifest.stream_hash})")
    digests = [(m.data or {}).get("validation_digest") for m in (baseline_manifest, manifest)]
    if digests[0] != digests[1]:
        raise UserError(f"--fwt-baseline {baseline_dir} was scored on other validation images (set "
                        f"{digests[0]}) than this run (set {digests[1]})")
    baseline = build_summary(baseline_dir, manifest.step_classes, manifest.stream, baseline_manifest.method, miou_mode)
    if not baseline["initial"]:
        raise UserError(f"--fwt-baseline {baseline_dir} has no initial evaluation (no stats/initial.npz: "
                        "it ran with eval.initial=false)")
    return {metric: forward_transfer_gem(np.array(summary["matrices"][metric], dtype=float),
                                         np.array(row, dtype=float))
            for metric, row in baseline["initial"].items() if metric in summary["matrices"]}
