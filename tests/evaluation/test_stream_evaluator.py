"""StreamEvaluator: a built-in baseline driven through the Python API (streams.load, Step.step_data, evaluate_step)
gets its CLI run's numbers to 1e-9, and writes a run folder the leaderboard reads."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import streams
from benchmark.config import load_config, method_config
from benchmark.data.types import ImageInput
from benchmark.errors import UserError
from benchmark.evaluation import StreamEvaluator
from benchmark.method import METHODS
from benchmark.models import build_segmenter
from benchmark.leaderboard.runs import read_runs

REPO = Path(__file__).resolve().parents[2]
SETTINGS = ["stream=demo_4steps", "eval.max_images=8", "stream.max_train_images_per_step=10"]


@pytest.fixture(scope="module")
def cli_run(demo_root, tmp_path_factory):
    """`covseg run method=knnclip` on the demo, as a user types it: (run folder, summary, manifest)."""
    results = tmp_path_factory.mktemp("cli")
    subprocess.run([sys.executable, "-m", "benchmark", "run", "method=knnclip", *SETTINGS, f"data.root={demo_root}",
                    f"results_dir={results}", "quiet=true"], cwd=REPO, check=True, capture_output=True)
    run_dir = next(results.glob("demo_4steps/knnclip/*"))
    return run_dir, *(json.loads((run_dir / name).read_text()) for name in ("summary.json", "manifest.json"))


@pytest.fixture(scope="module")
def driven(demo_root):
    """knnclip driven through the API: the runner's seeding and segmenter, the stream's StepData, and the
    evaluator given the method's predict over S_t."""
    import random

    import torch

    cfg = load_config([*SETTINGS, "method=knnclip", f"data.root={demo_root}"])
    stream = streams.load("demo_4steps", data_root=demo_root, max_train_images_per_step=10)
    random.seed(0), np.random.seed(0), torch.manual_seed(0)  # as the runner seeds (seed=0)
    method = METHODS.get("knnclip")(method_config(cfg), build_segmenter(cfg.model, seed=0), stream.num_classes, seed=0)
    evaluator = StreamEvaluator(stream, max_images=8)

    def predict_with(vocab):
        return lambda batch: method.predict([ImageInput(b["image_id"], b["image"].numpy()) for b in batch], vocab)

    records = [evaluator.evaluate_step(-1, predict_with(stream.vocabulary))]
    for step in stream.steps:
        method.learn(step.step_data())
        records.append(evaluator.evaluate_step(step.index, predict_with(stream.vocabulary.subset(step.seen)),
                                               memory_bytes=method.memory_bytes()))
    return stream, evaluator, records


def _close(a, b) -> None:
    """Equal to 1e-9 (NaN / None where the other is too), nested lists and dicts alike."""
    if isinstance(a, dict):
        assert set(a) == set(b)
        for key in a:
            _close(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _close(x, y)
    elif a is None or (isinstance(a, float) and math.isnan(a)):
        assert b is None or (isinstance(b, float) and math.isnan(b))
    else:
        assert abs(a - b) <= 1e-9, (a, b)


def test_driven_baseline_equals_its_cli_run(cli_run, driven):
    _, summary, manifest = cli_run
    stream, evaluator, _ = driven
    assert stream.hash == manifest["stream_hash"]
    results = evaluator.results(method="knnclip")
    assert set(results) == set(summary)
    for key in ("matrices", "initial", "metrics", "seen", "learning_gain", "previous_last", "memory_bytes"):
        _close(results[key], summary[key])
    assert results["metrics"]["miou"]["final"] > 0


def test_step_records_are_the_runs(cli_run, driven):
    run_dir, summary, _ = cli_run
    _, _, records = driven
    assert records[0]["miou_all"] == pytest.approx(json.loads((run_dir / "stats" / "initial.json").read_text())["miou_all"], abs=1e-9)
    assert [r["miou_seen"] for r in records[1:]] == pytest.approx(summary["seen"]["miou"], abs=1e-9)


def test_written_run_is_read_by_the_leaderboard(cli_run, driven, tmp_path):
    _, summary, cli_manifest = cli_run
    _, evaluator, _ = driven
    run_dir = evaluator.write(tmp_path, method="my-loop")
    runs, skipped = read_runs(tmp_path)
    assert skipped == [] and [r.path for r in runs] == [run_dir]
    run = runs[0]
    assert run.manifest["loop"] == "external" and run.manifest["protocol"]["loop"] == "external"
    assert "[external loop]" in run.variant()
    assert run.manifest["stream_hash"] == cli_manifest["stream_hash"]
    assert run.validation_set == (cli_manifest["data"]["validation_digest"], cli_manifest["data"]["validation_images"])
    _close(run.summary["matrices"], summary["matrices"])
    assert run.summary["method"] == "my-loop" and run.config["method"] == {"name": "my-loop"}
    assert (run_dir / "class_scores.csv").is_file() and (run_dir / "matrix_miou.csv").is_file()


def test_predictions_as_tensors_and_steps_in_order(driven):
    import torch

    stream = driven[0]
    evaluator = StreamEvaluator(stream, max_images=3, batch_size=2)
    with pytest.raises(UserError, match="the next is step 0"):
        evaluator.evaluate_step(1, lambda batch: [])
    constant = stream.steps[0].classes[0]
    record = evaluator.evaluate_step(0, lambda batch: [torch.full(b["image"].shape[:2], constant) for b in batch])
    assert 0 <= record["miou_seen"] <= 100
    with pytest.raises(UserError, match="1 of the stream's 4 steps"):
        evaluator.results()
    with pytest.raises(UserError, match="eval.vocabulary=every"):
        StreamEvaluator(stream, vocabulary="every")


def test_panoptic_stream_scores_pq_as_the_runner(run_demo, demo_root):
    """zeroshot on the panoptic demo: SegmentationOutputs with pan_seg through the API give the run's PQ matrix."""
    settings = ["stream=demo_panoptic_4steps", "eval.max_images=4", "stream.max_train_images_per_step=2"]
    _, summary = run_demo("method=zeroshot", *settings)
    cfg = load_config([*settings, "method=zeroshot", f"data.root={demo_root}"])
    stream = streams.load("demo_panoptic_4steps", data_root=demo_root, max_train_images_per_step=2)
    method = METHODS.get("zeroshot")(method_config(cfg), build_segmenter(cfg.model, seed=0), stream.num_classes, seed=0)
    evaluator = StreamEvaluator(stream, max_images=4)

    def predict_with(vocab):
        return lambda batch: method.predict([ImageInput(b["image_id"], b["image"].numpy(), panoptic=True)
                                             for b in batch], vocab)

    evaluator.evaluate_step(-1, predict_with(stream.vocabulary))
    for step in stream.steps:
        evaluator.evaluate_step(step.index, predict_with(stream.vocabulary.subset(step.seen)))
    results = evaluator.results(method="zeroshot")
    assert set(results["matrices"]) == {"miou", "pq"}
    _close(results["matrices"], summary["matrices"])
    _close(results["metrics"], summary["metrics"])
