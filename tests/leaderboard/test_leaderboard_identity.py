"""The leaderboard never averages or pairs runs over different validation sets, keeps a run with the initial
evaluation for the columns that need it when a repeat without it comes later, and shows a column's own n
when it covers fewer runs than its row."""
import json

import pytest
from run_folders import KNN_DEFAULTS, make_run, read_csv

from benchmark.leaderboard.command import main


def _data(digest: str, images: int) -> dict:
    return {"data": {"validation_digest": digest, "validation_images": images}}


def _with_initial(run_dir, learning_gain: float) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["metrics"]["miou"]["learning_gain"] = learning_gain
    summary["initial"] = {"miou": [1.0, 1.0]}
    (run_dir / "summary.json").write_text(json.dumps(summary))


def test_runs_over_different_validation_sets_are_never_averaged_or_paired(tmp_path):
    root = tmp_path / "results"
    make_run(root, "full", KNN_DEFAULTS, 30.0, seed=0, manifest_extra=_data("d100", 100))
    make_run(root, "short", KNN_DEFAULTS, 50.0, seed=1, manifest_extra=_data("d99", 99))
    for seed in (0, 1):
        make_run(root, f"zs{seed}", {"name": "zeroshot"}, 1.0, seed=seed, forgetting=1.0,
                 manifest_extra=_data("d100", 100))
    assert main([f"results_dir={root}"]) == 0
    rows = {r["label"]: r for r in read_csv(root)}
    full, short = rows["knnclip [validation set d100: 100 images]"], rows["knnclip [validation set d99: 99 images]"]
    assert full["n_runs"] == short["n_runs"] == "1" and float(short["miou_final_mean"]) == 50.0
    assert full["paired_n"] == "1" and float(full["paired_final_diff_mean"]) == 29.0
    assert short["paired_n"] == "0" and short["miou_excess_forgetting_n"] == "0"  # no zero-shot run on its images


def test_a_repeat_without_the_initial_evaluation_keeps_the_one_with_it_for_learning_gain(tmp_path):
    """The issue's case: 4 seeds with the initial row, then seed 0 again without it; learning gain was the mean
    of 3 runs shown under n=4."""
    root = tmp_path / "results"
    for seed, gain in enumerate((4.0, 8.0, 12.0, 16.0)):
        _with_initial(make_run(root, f"s{seed}", KNN_DEFAULTS, 30.0, seed=seed,
                               manifest_extra={"finished": "2026-01-01"}), gain)
    make_run(root, "s0-again", KNN_DEFAULTS, 34.0, seed=0, manifest_extra={"finished": "2026-01-02"})
    assert main([f"results_dir={root}"]) == 0
    row = read_csv(root)[0]
    assert row["n_runs"] == "4" and float(row["miou_final_mean"]) == pytest.approx((34 + 30 * 3) / 4)
    assert float(row["miou_learning_gain_mean"]) == pytest.approx(10.0) and row["miou_learning_gain_n"] == "4"


def test_a_column_covering_fewer_runs_than_its_row_shows_its_n(tmp_path):
    root = tmp_path / "results"
    make_run(root, "k0", KNN_DEFAULTS, 30.0, seed=0, forgetting=5.0)
    make_run(root, "k1", KNN_DEFAULTS, 32.0, seed=1, forgetting=6.0)
    make_run(root, "z0", {"name": "zeroshot"}, 1.0, seed=0, forgetting=1.0)  # a partner for seed 0 only
    assert main([f"results_dir={root}"]) == 0
    knn = next(line for line in (root / "LEADERBOARD.md").read_text().splitlines() if "| knnclip |" in line)
    assert "| 4.0 (n=1) |" in knn  # excess forgetting: 5 - 1, one run of two
    assert "31.0 ± 1.4 |" in knn and "31.0 ± 1.4 (n=" not in knn  # final mIoU covers the row
