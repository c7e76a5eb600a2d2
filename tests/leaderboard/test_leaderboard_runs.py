"""Reading runs (benchmark.leaderboard.runs): benchmark.results.load agrees with the leaderboard, superseded
repeats are flagged and left out, variant labels are short."""
import csv

import pandas as pd
import pytest
import yaml

import benchmark.results
from benchmark.leaderboard.command import main
from benchmark.leaderboard.runs import compact_label
from run_folders import KNN_DEFAULTS, make_run


def test_compact_labels():
    defaults = {"name": "avalanche", "lr": 0.01, "strategy": "Naive", "strategy_args": {}}
    ewc = {**defaults, "strategy": "EWC", "strategy_args": {"ewc_lambda": 1000.0}}
    assert compact_label(ewc, defaults) == "avalanche/EWC λ=1000"
    assert compact_label({**defaults, "lr": 0.001}, defaults) == "avalanche/Naive lr=0.001"
    assert compact_label({**KNN_DEFAULTS, "k": 32, "tau": 0.05}, KNN_DEFAULTS) == "knnclip k=32 τ=0.05"
    assert compact_label({"name": "zeroshot"}, {"name": "zeroshot"}) == "zeroshot"


@pytest.fixture
def results(tmp_path):
    """knnclip defaults: seed 0 run three times (the latest counts), seed 1, another class order; knnclip k=32
    named by the user; zeroshot; an unfinished run."""
    root = tmp_path / "results"
    for run_id, final, finished in (("a1", 10.0, "2026-01-01"), ("a2", 20.0, "2026-01-03"), ("a3", 90.0, "2026-01-02")):
        make_run(root, run_id, KNN_DEFAULTS, final, seed=0, manifest_extra={"finished": finished})
    make_run(root, "b", KNN_DEFAULTS, 33.0, seed=1)
    make_run(root, "c", KNN_DEFAULTS, 36.0, order_seed=1, stream_hash="hash-o1")
    named = make_run(root, "d", {**KNN_DEFAULTS, "k": 32}, 40.0)
    config = yaml.safe_load((named / "config.yaml").read_text())
    config.update(name="kNN k32", tags=["sweep", "k"])
    (named / "config.yaml").write_text(yaml.safe_dump(config))
    make_run(root, "e", {"name": "zeroshot"}, 1.0)
    make_run(root, "f", KNN_DEFAULTS, 99.0, status="running")
    return root


def test_load_gives_the_leaderboards_means_std_and_n(results):
    """The issue's case: a groupby over results.load mixed superseded repeats into the mean (and n)."""
    assert main([f"results_dir={results}", "bootstrap=0"]) == 0
    with open(results / "leaderboard.csv") as handle:
        board = {row["config_hash"]: row for row in csv.DictReader(handle)}
    frame = benchmark.results.load(results)
    final = frame.query("group == 'stream' and metric == 'miou.final'")
    stats = final.groupby(["stream", "stream_version", "config_hash", "variant", "model"])["value"].agg(
        ["mean", "std", "count"]).reset_index()
    assert len(stats) == len(board) == 3
    for _, row in stats.iterrows():
        expected = board[row["config_hash"]]
        assert row["variant"] == expected["label"] and row["model"] == expected["model"]
        assert row["count"] == int(expected["n_runs"])
        assert row["mean"] == pytest.approx(float(expected["miou_final_mean"]))
        if expected["miou_final_std"]:
            assert row["std"] == pytest.approx(float(expected["miou_final_std"]))
    knn = stats[stats["variant"] == "knnclip"].iloc[0]
    assert knn["count"] == 3 and knn["mean"] == pytest.approx((20 + 33 + 36) / 3)


def test_superseded_repeats_are_flagged_and_left_out_by_default(results):
    runs = lambda frame: sorted(frame["run_id"].unique())  # noqa: E731
    assert runs(benchmark.results.load(results)) == ["a2", "b", "c", "d", "e"]
    every = benchmark.results.load(results, superseded=True)
    assert runs(every) == ["a1", "a2", "a3", "b", "c", "d", "e"]
    flagged = every.groupby("run_id")["superseded"].agg(["min", "max"])
    assert flagged.loc[["a1", "a3"]].all().all() and not flagged.drop(["a1", "a3"]).any().any()


def test_load_columns_name_tags_model_vocabulary_steps(results):
    frame = benchmark.results.load(results)
    named = frame[frame["run_id"] == "d"].iloc[0]
    assert (named["variant"], named["name"], named["tags"]) == ("kNN k32", "kNN k32", "sweep;k")
    plain = frame[frame["run_id"] == "b"].iloc[0]
    assert plain["variant"] == "knnclip" and pd.isna(plain["name"]) and plain["tags"] == ""
    assert plain["model"] == "tiny_random" and plain["eval_vocabulary"] == "seen" and plain["num_steps"] == 2
    assert list(frame.columns) == list(benchmark.results.COLUMNS)


def test_name_and_tags_are_run_options_that_label_without_changing_the_row():
    from omegaconf import OmegaConf

    from benchmark.config import load_config
    from benchmark.leaderboard.runs import config_identity

    named = OmegaConf.to_container(load_config(["name=kNN k32", "tags=[sweep,k]"]), resolve=True)
    plain = OmegaConf.to_container(load_config([]), resolve=True)
    assert named["name"] == "kNN k32" and named["tags"] == ["sweep", "k"] and plain["name"] is None
    assert config_identity(named) == config_identity(plain)  # the same leaderboard row (config_hash)
