"""Stream metrics against hand-computed matrices (formulas in benchmark/evaluation/stream_metrics.py)."""
import numpy as np
import pytest

from benchmark.evaluation.stream_metrics import (backward_transfer, excess_forgetting, forgetting_first,
                                                 forgetting_max, forward_transfer, forward_transfer_gem, learning_gain,
                                                 panoptic_stream_results, semantic_stream_results, StreamScores,
                                                 stream_metric_values)

nan = float("nan")
# R[t][j], T = 2; the upper triangle exists only for an open-vocabulary run with the full vocabulary
R_SEEN = np.array([[60.0, nan, nan], [62.0, 70.0, nan], [40.0, 65.0, 80.0]])
R_OPEN = np.array([[60.0, 30.0, 10.0], [62.0, 70.0, 20.0], [40.0, 65.0, 80.0]])
INITIAL = np.array([50.0, 25.0, 12.0])  # R[-1][j]: the untouched method, every class, before step 0


def stream_summary(R: np.ndarray, seen: list[float], initial: np.ndarray | None = None) -> dict[str, float]:
    """The registered stream metrics of R and the seen scores (no per-class scores: class-set metrics NaN)."""
    groups = R.shape[1]
    return stream_metric_values(StreamScores(R, initial, seen, np.zeros(groups), np.zeros(groups, dtype=bool),
                                             [[j] for j in range(groups)]))


def test_forgetting_and_transfer_golden():
    assert forgetting_max(R_SEEN) == pytest.approx(((62 - 40) + (70 - 65)) / 2)  # max over l in [j, T-1]
    assert forgetting_first(R_SEEN) == pytest.approx(((60 - 40) + (70 - 65)) / 2)
    assert backward_transfer(R_SEEN) == pytest.approx(((40 - 60) + (65 - 70)) / 2)
    assert np.isnan(forward_transfer(R_SEEN, INITIAL)) and np.isnan(forward_transfer(R_OPEN, None))
    summary = stream_summary(R_OPEN, [60.0, 66.0, 61.0])
    assert summary["final"] == 61.0 and summary["avg_incremental"] == pytest.approx(187 / 3)
    assert summary["forgetting_max"] == pytest.approx(13.5)  # the upper triangle does not change forgetting
    assert np.isnan(summary["forward_transfer"]) and np.isnan(summary["learning_gain"])  # no initial row
    single = stream_summary(np.array([[55.0]]), [55.0])
    assert np.isnan(single["forgetting_max"]) and np.isnan(single["bwt"]) and single["final"] == 55.0


def test_transfer_against_the_initial_row_golden():
    # Avalanche: R[j-1][j] - R[-1][j] for j = 1, 2: (30 - 25, 20 - 12)
    assert forward_transfer(R_OPEN, INITIAL) == pytest.approx((5 + 8) / 2)
    # GEM's metrics.py with baseline b: fwt = [0, R[0][1] - b[1], R[1][2] - b[2]] = [0, 20, 15], fwt.mean()
    assert forward_transfer_gem(R_OPEN, np.array([0.0, 10.0, 5.0])) == pytest.approx(35 / 3)
    assert learning_gain(R_OPEN, INITIAL) == pytest.approx([40 - 50, 65 - 25, 80 - 12])  # R[T][j] - R[-1][j]
    summary = stream_summary(R_OPEN, [60.0, 66.0, 61.0], initial=INITIAL)
    assert summary["forward_transfer"] == pytest.approx(6.5) and summary["learning_gain"] == pytest.approx(98 / 3)
    # a zero-shot run on the same stream: its forgetting (vocabulary growth only) is (70-60 + 28-27)/2 = 5.5
    zero_shot = np.array([[70.0, 30.0, 10.0], [65.0, 28.0, 11.0], [60.0, 27.0, 12.0]])
    assert excess_forgetting(R_OPEN, zero_shot) == pytest.approx(13.5 - 5.5)
    assert learning_gain(zero_shot, zero_shot[-1]) == [0.0, 0.0, 0.0]


# final confusion over 4 classes (rows ground truth): IoU 1/2, 1, 0 (class 2 predicted, absent), 3/5
CONFUSION = np.array([[1, 0, 0, 1], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 1, 3]])
STEPS = [[0, 1], [2], [3]]


def test_semantic_stream_present_and_legacy_golden():
    present = semantic_stream_results([CONFUSION] * 3, STEPS)
    np.testing.assert_allclose(present["matrix"], [[75, nan, 60]] * 3)
    assert present["seen"] == pytest.approx([75, 75, 70])
    summary = present["summary"]
    assert summary["final"] == pytest.approx(70) and summary["avg_incremental"] == pytest.approx(220 / 3)
    assert [summary[k] for k in ("previous", "last", "base", "novel")] == pytest.approx([75, 60, 75, 60])
    assert (summary["old"], summary["new"]) == (summary["base"], summary["novel"])  # MiB's / PLOP's names
    assert np.isnan(summary["forward_transfer"]) and present["initial"] is None

    # initial evaluation: class 0 IoU 1, class 1 1/2 (one pixel predicted as 2), class 2 1/2, class 3 absent
    initial = np.array([[2, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    with_initial = semantic_stream_results([CONFUSION] * 3, STEPS, initial_confusion=initial)
    np.testing.assert_allclose(with_initial["initial"], [75, 50, nan])
    np.testing.assert_allclose(with_initial["learning_gain"], [0, nan, nan])  # R[2] = [75, nan, 60]
    summary = with_initial["summary"]
    assert summary["learning_gain"] == 0 and summary["initial"] == pytest.approx(100 * 2 / 3)
    # R[0][1] is undefined (class 2 absent at step 0) and so is R[-1][2] (class 3 absent initially)
    assert np.isnan(summary["forward_transfer"])

    legacy = semantic_stream_results([CONFUSION] * 3, STEPS, miou_mode="legacy")
    np.testing.assert_allclose(legacy["matrix"], [[75, 0, 60]] * 3)
    assert legacy["seen"] == pytest.approx([75, 50, 52.5])
    # previous = S_1 = {0, 1, 2}, last = C_2 = {3}; MiB / PLOP's old = C_0, new = C_1 ∪ C_2 (= base / novel)
    assert [legacy["summary"][k] for k in ("previous", "last", "base", "novel", "old", "new")] == pytest.approx(
        [50, 60, 75, 30, 75, 30])


def test_semantic_stream_forgetting_from_confusions():
    learned = np.diag([4, 4, 0, 0])  # after step 0: classes 0 and 1 perfect
    later = np.array([[2, 2, 0, 0], [0, 4, 0, 0], [0, 0, 4, 0], [0, 0, 0, 0]])  # class 0 half lost, 1 hurt
    result = semantic_stream_results([learned, later], [[0, 1], [2]])
    # IoU after step 1: class 0 2/4, class 1 4/6, class 2 1
    assert result["matrix"][1, 0] == pytest.approx(100 * (0.5 + 2 / 3) / 2)
    assert result["summary"]["forgetting_first"] == pytest.approx(100 - 100 * (0.5 + 2 / 3) / 2)
    assert result["summary"]["last"] == pytest.approx(100) and result["summary"]["base"] == result["matrix"][1, 0]


def test_panoptic_stream_golden():
    # per class: 0: one TP at IoU 0.8; 1: one TP at IoU 2/3; 2: one FP and one FN; 3: nothing
    scale = 2.0**40
    stats = {"tp": np.array([1, 1, 0, 0]), "fp": np.array([0, 0, 1, 0]), "fn": np.array([0, 0, 1, 0]),
             "iou_sum": np.rint(np.array([0.8, 2 / 3, 0, 0]) * scale).astype(np.int64)}
    result = panoptic_stream_results([stats, stats], [[0], [1, 2, 3]])
    np.testing.assert_allclose(result["matrix"], [[80, 100 / 3]] * 2, atol=1e-9)  # class 3 is not counted
    assert result["seen"] == pytest.approx([80, 100 * (0.8 + 2 / 3) / 3])
    assert result["summary"]["novel"] == pytest.approx(100 / 3) and result["summary"]["bwt"] == 0.0
    assert np.isnan(result["summary"]["forward_transfer"])
    # initial: class 0 one FP and no TP (PQ 0), classes 1-3 as at every step
    initial = {**stats, "tp": np.array([0, 1, 0, 0]), "fp": np.array([1, 0, 1, 0]),
               "iou_sum": stats["iou_sum"] * np.array([0, 1, 1, 1])}
    with_initial = panoptic_stream_results([stats, stats], [[0], [1, 2, 3]], initial_stats=initial)
    np.testing.assert_allclose(with_initial["initial"], [0, 100 / 3], atol=1e-9)  # class 0 counted (FP), PQ 0
    assert with_initial["summary"]["forward_transfer"] == pytest.approx(0)  # R[0][1] - R[-1][1]
    assert with_initial["learning_gain"] == pytest.approx([80, 0])
