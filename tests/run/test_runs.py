"""End-to-end runs on the demo stream: every registered method, and the headline comparison."""
import json

import numpy as np
import pytest

from project_methods import project_methods


@pytest.mark.parametrize("method", project_methods())
def test_every_method_runs_two_steps(run_demo, method):
    run_dir, summary = run_demo(f"method={method}", "stream.num_steps=2", "eval.max_images=8",
                                "stream.max_train_images_per_step=12")
    assert summary["method"] == method and summary["num_steps"] == 2
    matrix = np.array(summary["matrices"]["miou"], dtype=float)
    assert matrix.shape == (2, 2) and np.isnan(matrix[0, 1]) and not np.isnan(matrix[1]).any()
    for name in ("config.yaml", "manifest.json", "matrix_miou.csv", "stats/step_000.npz", "stats/step_001.npz"):
        assert (run_dir / name).is_file(), name
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["stream_hash"] and manifest["packages"]["torch"]
    assert set(summary["metrics"]["miou"]) >= {"final", "avg_incremental", "forgetting_max", "forgetting_first", "bwt"}
    assert len(summary["memory_bytes"]) == 2 and len(summary["seconds"]["learn"]) == 2


@pytest.mark.slow  # two full demo runs (the README's headline); CI runs -m slow
def test_knnclip_beats_zeroshot_by_15_points_on_demo(run_demo):
    from benchmark.evaluation.stream_metrics import excess_forgetting

    knn_dir, knn = run_demo("method=knnclip")
    zero_dir, zero = run_demo("method=zeroshot")
    print("final mIoU: knnclip", knn["metrics"]["miou"]["final"], "zeroshot", zero["metrics"]["miou"]["final"])
    assert knn["metrics"]["miou"]["final"] >= zero["metrics"]["miou"]["final"] + 15
    assert knn["memory_bytes"] == sorted(knn["memory_bytes"]) and knn["memory_bytes"][0] > 0  # the database grows

    # initial evaluation (row -1 of R), on disk as raw statistics and in the matrix CSV
    for run_dir in (knn_dir, zero_dir):
        assert (run_dir / "stats" / "initial.npz").is_file() and "initial" in (run_dir / "matrix_miou.csv").read_text()
    # the untouched kNN-CLIP (empty database) is the zero-shot model: same initial row
    assert knn["initial"]["miou"] == zero["initial"]["miou"]
    # zero-shot's last step segments with every class, as the initial evaluation does: identical predictions
    assert zero["learning_gain"]["miou"] == [0.0] * 4 and zero["metrics"]["miou"]["learning_gain"] == 0.0
    assert zero["metrics"]["miou"]["forgetting_max"] > 0  # old classes lose IoU to the growing vocabulary alone
    excess = excess_forgetting(np.array(knn["matrices"]["miou"]), np.array(zero["matrices"]["miou"]))
    print(f"forgetting_max: knnclip {knn['metrics']['miou']['forgetting_max']:.2f}, zeroshot "
          f"{zero['metrics']['miou']['forgetting_max']:.2f}; kNN-CLIP excess forgetting {excess:.2f}; learning gain "
          f"knnclip {knn['learning_gain']['miou']}")


def test_forward_transfer_with_every_class_and_gem_baseline_in_report(run_demo, capsys):
    from benchmark.__main__ import main

    run_dir, summary = run_demo("method=knnclip", "stream.num_steps=2", "eval.max_images=8", "eval.vocabulary=all",
                                "stream.max_train_images_per_step=12")
    R, initial = np.array(summary["matrices"]["miou"], dtype=float), summary["initial"]["miou"]
    forward = summary["metrics"]["miou"]["forward_transfer"]
    assert forward == pytest.approx(R[0, 1] - initial[1]) and forward != 0  # Avalanche: R[0][1] - R[-1][1]
    assert main(["report", str(run_dir), "--fwt-baseline", str(run_dir)]) == 0
    # GEM's code with this run's initial row as baseline: fwt = [0, R[0][1] - b[1]], fwt.mean()
    expected = f"forward transfer (GEM, baseline: initial evaluation of {run_dir}), miou: {forward / 2:.2f}"
    assert expected in capsys.readouterr().out
    other_dir, _ = run_demo("method=zeroshot", "stream.num_steps=2", "eval.max_images=8", "stream.order_seed=1",
                            "stream.max_train_images_per_step=12")
    assert main(["report", str(run_dir), "--fwt-baseline", str(other_dir)]) == 2
    assert "ran stream demo_4steps (hash" in capsys.readouterr().err


def test_same_seed_same_summary(run_demo):
    args = ("method=knnclip", "stream.num_steps=2", "eval.max_images=10", "stream.max_train_images_per_step=20")
    _, first = run_demo(*args)
    _, second = run_demo(*args)
    strip = lambda s: {k: v for k, v in s.items() if k not in ("run_id", "seconds")}  # noqa: E731
    assert strip(first) == strip(second)


def test_panoptic_stream_reports_pq_and_report_recomputes_summary(run_demo, capsys):
    from benchmark.__main__ import main

    run_dir, summary = run_demo("stream=demo_panoptic_4steps", "stream.num_steps=2", "eval.max_images=12",
                                "stream.max_train_images_per_step=20")
    assert set(summary["metrics"]) == {"miou", "pq"}
    pq = np.array(summary["matrices"]["pq"], dtype=float)
    assert pq.shape == (2, 2) and np.all((pq[1] >= 0) & (pq[1] <= 100))
    from benchmark.evaluation.per_image import KEYS as PER_IMAGE_KEYS

    assert set(np.load(run_dir / "stats" / "step_001.npz").files) == {"confusion", "pq_tp", "pq_fp", "pq_fn", "pq_iou_sum",
                                                                      *PER_IMAGE_KEYS, "image_ids"}
    (run_dir / "summary.json").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert "PQ matrix" in capsys.readouterr().out
