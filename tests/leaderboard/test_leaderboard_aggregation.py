"""Leaderboard aggregation on hand-made run folders: means, sample std, counts, grouping by method
configuration, stream version separation, incomplete runs ignored, relative links."""
import json
import re
from pathlib import Path

import pytest
import yaml

from benchmark.__main__ import main as benchmark_main
from benchmark.errors import UserError
from benchmark.leaderboard.command import main
from benchmark.leaderboard.table import human_bytes
from run_folders import KNN_DEFAULTS, make_run, read_csv


@pytest.fixture
def results(tmp_path) -> Path:
    """knnclip defaults x3 (seeds 0, 1 and a second class order), knnclip k=32 x1, zeroshot x1, one unfinished."""
    root = tmp_path / "results"
    make_run(root, "a", KNN_DEFAULTS, 30.0, seed=0, memory=(1000, 3000))
    make_run(root, "b", KNN_DEFAULTS, 33.0, seed=1, memory=(1000, 6000), learn=(3.0, 3.0), evaluation=(3.0, 3.0))
    make_run(root, "c", KNN_DEFAULTS, 36.0, seed=0, order_seed=1, stream_hash="hash-o1", memory=(1000, 9000))
    make_run(root, "d", {**KNN_DEFAULTS, "k": 32}, 40.0)
    make_run(root, "e", {"name": "zeroshot"}, 1.0, memory=(0, 0))
    make_run(root, "f", KNN_DEFAULTS, 99.0, status="running")
    return root


def test_excess_forgetting_against_the_zero_shot_run_of_the_same_stream_model_and_seed(tmp_path):
    root = tmp_path / "results"
    z0 = make_run(root, "z0", {"name": "zeroshot"}, 1.0, seed=0, forgetting=3.0)
    config = yaml.safe_load((z0 / "config.yaml").read_text())
    config["model"]["batch_size"] = 32  # an execution setting: the pair still holds
    (z0 / "config.yaml").write_text(yaml.safe_dump(config))
    make_run(root, "z1", {"name": "zeroshot"}, 1.0, seed=1, forgetting=5.0)
    make_run(root, "k0", KNN_DEFAULTS, 30.0, seed=0, forgetting=10.0)  # excess 10 - 3 = 7
    make_run(root, "k1", KNN_DEFAULTS, 30.0, seed=1, forgetting=6.0)  # excess 6 - 5 = 1
    make_run(root, "k2", KNN_DEFAULTS, 30.0, seed=2, forgetting=50.0)  # no zero-shot run with seed 2: not counted
    make_run(root, "k3", KNN_DEFAULTS, 30.0, seed=0, order_seed=1, stream_hash="hash-o1", forgetting=50.0)  # other order
    assert main([f"results_dir={root}"]) == 0
    knn, zero = read_csv(root)
    assert float(knn["miou_excess_forgetting_mean"]) == pytest.approx(4.0)  # mean of 7 and 1
    assert float(knn["miou_excess_forgetting_std"]) == pytest.approx(18 ** 0.5)  # sample std of 7 and 1
    assert float(zero["miou_excess_forgetting_mean"]) == 0.0
    assert "| excess forgetting |" in (root / "LEADERBOARD.md").read_text()


def test_published_class_orders_of_one_stream_are_aggregated(tmp_path):
    root = tmp_path / "results"
    make_run(root, "a", KNN_DEFAULTS, 30.0, order="natural", stream_hash="hash-a")
    make_run(root, "b", KNN_DEFAULTS, 34.0, order="mib_b", stream_hash="hash-b")
    make_run(root, "c", KNN_DEFAULTS, 38.0, order="mib_c", stream_hash="hash-c")
    assert main([f"results_dir={root}"]) == 0
    [row] = read_csv(root)
    assert row["order_seeds"] == "mib_b;mib_c;natural" and float(row["miou_final_mean"]) == pytest.approx(34.0)
    assert float(row["miou_final_std"]) == pytest.approx(4.0)


def test_aggregates_mean_std_counts_and_groups_by_method_config(results, capsys):
    assert main([f"results_dir={results}"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 incomplete" in out and "toy/knnclip/f" in out
    rows = read_csv(results)
    assert [r["label"] for r in rows] == ["knnclip k=32", "knnclip", "zeroshot"]  # sorted by final mIoU
    knn = rows[1]
    assert int(knn["n_runs"]) == 3 and knn["seeds"] == "0;1" and knn["order_seeds"] == "0;1"
    assert float(knn["miou_final_mean"]) == pytest.approx(33.0)
    assert float(knn["miou_final_std"]) == pytest.approx(3.0)  # sample std of 30, 33, 36
    assert float(knn["miou_avg_incremental_mean"]) == pytest.approx(38.0)
    assert float(knn["memory_bytes_mean"]) == pytest.approx(6000.0)  # last step: 3000, 6000, 9000
    # time per step: (1 + 2 + 3 + 4) / 2 = 5, (3 + 3 + 3 + 3) / 2 = 6, 5 -> mean 16 / 3
    assert float(knn["seconds_per_step_mean"]) == pytest.approx(16 / 3)
    assert knn["stream_hashes"] == "hash-o0;hash-o1"
    assert knn["runs"] == "toy/knnclip/a;toy/knnclip/c;toy/knnclip/b"  # by seed, then order
    assert knn["config_hash"] != rows[0]["config_hash"]
    single = rows[0]
    assert int(single["n_runs"]) == 1 and single["miou_final_std"] == ""  # no std from one run
    assert all(float(r["miou_final_mean"]) != 99.0 for r in rows)  # the unfinished run is ignored


def test_markdown_rows_links_and_version_note(results):
    main([f"results_dir={results}"])
    markdown = (results / "LEADERBOARD.md").read_text()
    assert "## toy (version 1)" in markdown and "`hash-o0`" in markdown and "`hash-o1`" in markdown
    assert "1 incomplete run(s) ignored" in markdown
    knn_row = next(line for line in markdown.splitlines() if line.startswith("| 2 |"))
    assert "| knnclip |" in knn_row and "33.0 ± 3.0" in knn_row and "6.00 kB" in knn_row and "| 3 |" in knn_row
    links = re.findall(r"\]\(([^)]+)\)", markdown)
    run_links = [link for link in links if link.startswith("toy/")]
    assert len(run_links) == 6 and all((results / link).is_dir() for link in run_links)
    assert "## Unfinished runs" in markdown and "| [toy/knnclip/f](toy/knnclip/f/) | status 'running' |" in markdown
    assert any(link.startswith("plots/") and (results / link).is_file() for link in links)  # the curves figure


def test_repeated_runs_of_one_config_seed_and_order_count_once_latest_wins(tmp_path, capsys):
    """The issue's case: seeds s0 s0 s0 s0 s1 were n=5; they are two samples, the latest s0 standing for seed 0."""
    root = tmp_path / "results"
    for run_id, final, finished in (("r1", 10.0, "2026-01-01"), ("r2", 20.0, "2026-01-03"), ("r3", 90.0, "2026-01-02"),
                                    ("r4", 50.0, "2026-01-02T10")):
        make_run(root, run_id, KNN_DEFAULTS, final, seed=0, manifest_extra={"finished": finished})
    make_run(root, "r5", KNN_DEFAULTS, 30.0, seed=1, manifest_extra={"finished": "2026-01-01"})
    make_run(root, "r6", KNN_DEFAULTS, 70.0, seed=0, order_seed=1, stream_hash="hash-o1")  # another class order
    # another resolved config (not only the method: the model) is another row, never a repeat
    other_model = make_run(root, "r7", KNN_DEFAULTS, 5.0, seed=0)
    config = yaml.safe_load((other_model / "config.yaml").read_text())
    config["model"]["superpixel_segments"] = 99
    (other_model / "config.yaml").write_text(yaml.safe_dump(config))
    # results_dir, device and batch sizes never change a number: same row
    moved = make_run(root, "r8", KNN_DEFAULTS, 40.0, seed=2)
    config = yaml.safe_load((moved / "config.yaml").read_text())
    config.update(results_dir="/elsewhere", device="cuda")
    config["eval"]["batch_size"] = 2
    (moved / "config.yaml").write_text(yaml.safe_dump(config))

    assert main([f"results_dir={root}"]) == 0
    assert "3 repeated run(s) superseded" in capsys.readouterr().out
    rows = {r["model"]: r for r in read_csv(root)}
    row = rows["tiny_random"]
    assert row["runs"] == "toy/knnclip/r2;toy/knnclip/r6;toy/knnclip/r5;toy/knnclip/r8"
    assert row["superseded_runs"] == "toy/knnclip/r1;toy/knnclip/r3;toy/knnclip/r4"
    assert int(row["n_runs"]) == 4 and float(row["miou_final_mean"]) == pytest.approx((20 + 70 + 30 + 40) / 4)
    assert int(rows["tiny_random superpixel_segments=99"]["n_runs"]) == 1
    markdown = (root / "LEADERBOARD.md").read_text()
    assert "(superseded repeats: [r1](toy/knnclip/r1/) [r3](toy/knnclip/r3/) [r4](toy/knnclip/r4/))" in markdown


def test_stream_versions_and_changed_data_are_never_mixed(tmp_path):
    root = tmp_path / "results"
    make_run(root, "v1", KNN_DEFAULTS, 10.0, version=1)
    make_run(root, "v2", KNN_DEFAULTS, 20.0, version=2, stream_hash="hash-v2")
    make_run(root, "x", KNN_DEFAULTS, 30.0, stream_hash="hash-other-data")  # same definition and order, other data
    make_run(root, "m", KNN_DEFAULTS, 40.0, max_images=5)  # another evaluation setting: its own row
    main([f"results_dir={root}"])
    rows = read_csv(root)
    by_version = {(r["stream_version"], r["stream_hashes"], r["label"]): r for r in rows}
    assert len(rows) == 4 and all(r["n_runs"] == "1" for r in rows)
    assert ("2", "hash-v2", "knnclip") in by_version
    assert {k[1] for k in by_version if k[0] == "1"} == {"hash-o0", "hash-other-data"}
    assert ("1", "hash-o0", "knnclip [eval max_images=5]") in by_version
    markdown = (root / "LEADERBOARD.md").read_text()
    assert "## toy (version 1)" in markdown and "## toy (version 2)" in markdown
    assert "## toy (version 1) — draw hash-oth… (private draw)" in markdown
    assert "differ only in the stream's draw" in markdown


def test_stream_filter_pq_column_and_user_errors(tmp_path, capsys):
    root = tmp_path / "results"
    make_run(root, "p", KNN_DEFAULTS, 20.0, stream="pano", pq_final=12.5)
    make_run(root, "t", KNN_DEFAULTS, 30.0)
    assert benchmark_main(["leaderboard", f"results_dir={root}", "stream=pano"]) == 0
    markdown = (root / "LEADERBOARD.md").read_text()
    assert "final PQ" in markdown and "| 12.5 |" in markdown and "## toy" not in markdown
    with pytest.raises(UserError, match="unknown option 'strem'.*did you mean: stream"):
        main([f"results_dir={root}", "strem=toy"])
    with pytest.raises(UserError, match="did you mean: pano"):
        main([f"results_dir={root}", "stream=panoo"])
    with pytest.raises(UserError, match="not a folder"):
        main([f"results_dir={tmp_path / 'missing'}"])
    assert benchmark_main(["leaderboard", f"results_dir={root}", "bogus"]) == 2
    assert "'bogus' is not key=value" in capsys.readouterr().err


def test_human_units():
    assert [human_bytes(v) for v in (512, 6000, 2.5e6, 3.2e9)] == ["512 B", "6.00 kB", "2.50 MB", "3.20 GB"]


def test_every_leaderboard_link_can_be_committed(results):
    """LEADERBOARD.md links into results/: .gitignore must let those files in (only stats/, checkpoints and
    tracker files stay out), so the links resolve in a committed results/."""
    import shutil
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    if shutil.which("git") is None or not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    main([f"results_dir={results}", "bootstrap=0"])
    markdown = (results / "LEADERBOARD.md").read_text()
    targets = {link.rstrip("/") for link in re.findall(r"\]\(([^)]+)\)", markdown)}
    paths = [f"results/{t}/summary.json" if (results / t).is_dir() else f"results/{t}" for t in targets]
    paths += ["results/LEADERBOARD.md", "results/leaderboard.csv", "results/results.csv"]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=repo, capture_output=True, text=True)
    assert ignored.stdout == "", ignored.stdout
    heavy = ["results/toy/knnclip/a/stats/step_000.npz", "results/toy/knnclip/a/checkpoint.pt"]
    assert subprocess.run(["git", "check-ignore", "--no-index", *heavy], cwd=repo, capture_output=True,
                          text=True).stdout.split() == heavy


def test_cold_and_warm_feature_caches_are_timed_apart(tmp_path):
    """A rerun that read its features from the disk cache is faster for that reason alone: its time per step
    is shown apart from the cold runs'."""
    root = tmp_path / "results"
    cold = {"passes": {"disk_cache_hits": 0, "disk_cache_writes": 120}}
    warm = {"passes": {"disk_cache_hits": 120, "disk_cache_writes": 0}}
    make_run(root, "a", KNN_DEFAULTS, 30.0, seed=0, learn=(1.0, 1.0), evaluation=(3.0, 3.0), manifest_extra=cold)
    make_run(root, "b", KNN_DEFAULTS, 30.0, seed=1, learn=(1.0, 1.0), evaluation=(0.2, 0.2), manifest_extra=warm)
    make_run(root, "c", {"name": "zeroshot"}, 1.0, learn=(0.0, 0.0), evaluation=(2.0, 2.0))  # not recorded
    assert main([f"results_dir={root}", "bootstrap=0"]) == 0
    knn, zero = read_csv(root)
    assert float(knn["seconds_per_step_cold_mean"]) == pytest.approx(4.0)
    assert float(knn["seconds_per_step_warm_mean"]) == pytest.approx(1.2)
    assert zero["seconds_per_step_cold_mean"] == zero["seconds_per_step_warm_mean"] == ""
    markdown = (root / "LEADERBOARD.md").read_text()
    assert "| 4.0 s cold, 1.2 s warm |" in markdown and "| 2.0 s |" in markdown


def test_protocols_get_their_own_rows_and_older_summaries_keep_their_meaning(tmp_path):
    """A config from before `protocol` (#23) ran covseg and shares its row; another preset gets its own, labelled.
    Older summaries' old / new (S_{T-1} / C_T) read as previous / last; old / new are MiB's base / novel now."""
    from benchmark.config import ProtocolConfig
    from dataclasses import asdict

    root = tmp_path / "results"
    make_run(root, "a", KNN_DEFAULTS, 30.0, seed=0)  # legacy: no protocol key, summary with old = 29, new = 31
    for run_id, seed, final, preset in (("b", 1, 32.0, "covseg"), ("c", 0, 40.0, "mib")):
        run_dir = make_run(root, run_id, KNN_DEFAULTS, final, seed=seed)
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        config["protocol"] = {**asdict(ProtocolConfig()), "name": preset}
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
        summary = json.loads((run_dir / "summary.json").read_text())
        summary["metrics"]["miou"] = {"final": final, "previous": final - 1, "last": final + 1, "base": final - 2,
                                      "novel": final + 2, "old": final - 2, "new": final + 2}
        (run_dir / "summary.json").write_text(json.dumps(summary))
    assert main([f"results_dir={root}"]) == 0
    mib, covseg = read_csv(root)
    assert mib["label"] == "knnclip [protocol mib]" and int(mib["n_runs"]) == 1
    assert covseg["label"] == "knnclip" and int(covseg["n_runs"]) == 2  # the legacy run and run b
    assert float(covseg["miou_previous_mean"]) == pytest.approx((29 + 31) / 2)  # legacy old -> previous
    assert float(covseg["miou_last_mean"]) == pytest.approx((31 + 33) / 2)
    assert float(covseg["miou_old_mean"]) == pytest.approx(30)  # run b's base: the legacy run has none
    assert float(mib["miou_new_mean"]) == pytest.approx(42)
    assert "old / new = mIoU on C_0 / C_1..C_T" in (root / "LEADERBOARD.md").read_text()
