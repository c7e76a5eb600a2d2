"""Results as data on real (small) demo runs: benchmark.results.load's rows agree with summary.json, the
per-class CSV with the final mIoU, the leaderboard's interval brackets the final mIoU and its paired
difference is the difference of the paired runs."""
import csv

import numpy as np
import pytest

SMALL = ("stream.num_steps=2", "eval.max_images=8", "stream.max_train_images_per_step=6")


@pytest.fixture(scope="module")
def two_methods(tmp_path_factory, demo_root):
    import json

    from benchmark.config import load_config
    from benchmark.runner import run_stream

    results = tmp_path_factory.mktemp("results")
    summaries = {}
    for method in ("zeroshot", "knnclip"):
        cfg = load_config([f"data.root={demo_root}", f"results_dir={results}", "quiet=true", f"method={method}", *SMALL])
        run_dir = run_stream(cfg)
        summaries[method] = (run_dir, json.loads((run_dir / "summary.json").read_text()))
    return results, summaries


def test_load_gives_one_row_per_run_step_group_metric(two_methods):
    import benchmark.results

    results, summaries = two_methods
    frame = benchmark.results.load(results)
    run_dir, summary = summaries["knnclip"]
    rows = frame[frame["run"] == run_dir.relative_to(results).as_posix()]
    seen = rows.query("group == 'seen' and metric == 'miou'").sort_values("step")["value"].tolist()
    assert seen == pytest.approx(summary["seen"]["miou"])
    r10 = rows.query("group == 'C0' and metric == 'miou' and step == 1")["value"].item()
    assert r10 == pytest.approx(summary["matrices"]["miou"][1][0])
    final = rows.query("group == 'stream' and metric == 'miou.final'")
    assert final["value"].item() == pytest.approx(summary["metrics"]["miou"]["final"]) and final["higher_is_better"].item()
    assert not rows.query("metric == 'miou.forgetting_max'")["higher_is_better"].item()
    assert set(rows["seed"]) == {0} and rows["method_digest"].str.len().eq(64).all()
    last = rows.query("group == 'last' and metric == 'miou'").sort_values("step")["value"].tolist()
    assert last[0] == pytest.approx(summary["matrices"]["miou"][0][0])  # C_0 after step 0
    previous = rows.query("group == 'previous' and step == 1")["value"].item()
    assert previous == pytest.approx(summary["metrics"]["miou"]["previous"])
    assert rows["config_hash"].nunique() == 1
    assert not frame.duplicated(["run", "step", "group", "metric"]).any()


def test_class_scores_csv_gives_the_final_miou(two_methods):
    _, summaries = two_methods
    run_dir, summary = summaries["knnclip"]
    with open(run_dir / "class_scores.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["step"] == "1"]
    scored = [float(r["iou"]) for r in rows if int(r["gt_pixels"]) > 0]
    assert np.mean(scored) == pytest.approx(summary["metrics"]["miou"]["final"], abs=1e-3)
    assert {r["learned_at_step"] for r in rows} == {"0", "1"}


def test_leaderboard_interval_and_paired_difference(two_methods):
    from benchmark.leaderboard.command import main

    results, summaries = two_methods
    assert main([f"results_dir={results}", "bootstrap=200"]) == 0
    with open(results / "leaderboard.csv") as handle:
        rows = {r["method"]: r for r in csv.DictReader(handle)}
    knn, zero = rows["knnclip"], rows["zeroshot"]
    final = summaries["knnclip"][1]["metrics"]["miou"]["final"]
    assert float(knn["miou_final_ci_low"]) < final < float(knn["miou_final_ci_high"])
    assert float(knn["paired_final_diff_mean"]) == pytest.approx(
        final - summaries["zeroshot"][1]["metrics"]["miou"]["final"])
    assert knn["paired_reference"].startswith("zeroshot") and knn["paired_n"] == "1" and zero["paired_n"] == "0"
    assert (results / "results.csv").is_file()
    markdown = (results / "LEADERBOARD.md").read_text()
    assert "final mIoU 95% CI (images)" in markdown and "(n=1) vs zeroshot" in markdown
    for figure in ("miou_seen_previous_last", "pareto", "forgetting"):  # comparison figures, linked from the table
        [path] = (results / "plots").glob(f"*-{figure}.png")
        assert path.stat().st_size > 10_000 and f"](plots/{path.name})" in markdown


def test_class_scores_csv_is_nan_for_classes_without_ground_truth(tmp_path):
    """A learned class predicted but absent from validation has no IoU (NaN), not 0; a present one keeps its IoU."""
    from benchmark.evaluation.summary import write_class_scores

    (tmp_path / "stats").mkdir()
    confusion = np.zeros((3, 3), np.int64)  # rows: ground truth, columns: prediction
    confusion[0, 0], confusion[0, 1] = 3, 1  # class 0: 3 of 4 pixels right, 1 predicted as class 1 (absent)
    np.savez(tmp_path / "stats" / "step_000.npz", confusion=confusion)
    path = write_class_scores(tmp_path, [[0, 1, 2]], ["a", "b", "c"])
    with open(path) as handle:
        rows = {r["class"]: r for r in csv.DictReader(handle)}
    assert float(rows["a"]["iou"]) == pytest.approx(75.0)
    assert rows["b"]["iou"] == "" and rows["b"]["gt_pixels"] == "0"  # predicted, never present: NaN (empty in CSV)
    assert rows["c"]["iou"] == ""
