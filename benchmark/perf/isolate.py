"""`python -m benchmark perf isolate [key=value ...]`: what isolate=true costs. Runs the same demo stream
(default: method=knnclip on demo_4steps) with isolate=false and then isolate=true in this one process, each
with its own empty feature cache after a tiny warm-up run (so neither pays this process's lazy imports), and
prints per setting: the run's wall time, learn + eval seconds per step, eval seconds per pass, the worker's
start-up and the bytes that crossed the socket per evaluation pass and per learning step, with the ratio
isolated / in-process."""
from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

from benchmark.errors import UserError
from benchmark.perf import timed_run

DEFAULTS = ("method=knnclip", "stream=demo_4steps")


def run(overrides: list[str], work: Path, name: str) -> dict:
    """One run; its timings from summary.json, and the isolated method's counters when isolate=true."""
    with contextlib.redirect_stdout(io.StringIO()):  # the runs' step lines and summaries
        run_dir, ctx, wall = timed_run([*overrides, f"results_dir={work / 'results'}", f"run_id={name}",
                                        f"model.cache_dir={work / ('cache-' + name)}", "quiet=true"])
    summary = json.loads((run_dir / "summary.json").read_text())
    seconds = summary["seconds"]
    passes = len(seconds["eval"]) + int((run_dir / "stats" / "initial.json").is_file())
    host = ctx.host
    moved = getattr(host, "bytes_moved", {})
    return {"wall": wall, "steps": len(seconds["learn"]),
            "step_seconds": (sum(seconds["learn"]) + sum(seconds["eval"])) / len(seconds["learn"]),
            "eval_seconds": sum(seconds["eval"]) / len(seconds["eval"]),
            "startup": getattr(host, "startup_seconds", 0.0),
            "eval_bytes": moved.get("predict", 0) / passes,
            "learn_bytes": moved.get("learn", 0) / len(seconds["learn"]),
            "final": summary["metrics"]["miou"]["final"]}


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    bad = [a for a in argv if "=" not in a or a.startswith("isolate=")]
    if bad:
        raise UserError(f"perf isolate takes run overrides key=value (isolate= is set by it), got '{bad[0]}'")
    overrides = [*DEFAULTS, *argv]
    with tempfile.TemporaryDirectory(prefix="covseg-perf-isolate-") as tmp:
        work = Path(tmp)
        run([*overrides, "eval.max_images=1", "stream.num_steps=1", "stream.max_train_images_per_step=1"],
            work, "warmup")
        plain = run([*overrides, "isolate=false"], work, "plain")
        isolated = run([*overrides, "isolate=true"], work, "isolated")
    if plain["final"] != isolated["final"]:
        print(f"WARNING: final mIoU differs: {plain['final']} in-process, {isolated['final']} isolated")
    rows = [("wall seconds of the run", "wall", "{:.2f}"), ("learn + eval seconds per step", "step_seconds", "{:.3f}"),
            ("eval seconds per pass", "eval_seconds", "{:.3f}"), ("worker start-up seconds", "startup", "{:.2f}"),
            ("MB moved per eval pass", "eval_bytes", "{:.2f}"), ("MB moved per learning step", "learn_bytes", "{:.2f}")]
    print(f"perf isolate: {' '.join(overrides)} ({plain['steps']} steps, final mIoU {plain['final']:.2f} both)")
    print(f"{'':32s} {'isolate=false':>14s} {'isolate=true':>13s} {'ratio':>7s}")
    for label, key, fmt in rows:
        scale = 1e6 if key.endswith("bytes") else 1.0
        a, b = plain[key] / scale, isolated[key] / scale
        ratio = f"{b / a:7.2f}" if a else "      -"
        print(f"{label:32s} {fmt.format(a):>14s} {fmt.format(b):>13s} {ratio}")
    return 0
