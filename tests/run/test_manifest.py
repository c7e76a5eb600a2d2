"""The typed manifest: manifests written by main's code before benchmark/run/ existed (tests/fixtures/main_runs)
read and write back byte for byte, old run folders still tabulate and report, and `execution` falls back to the
`protocol.isolate` of older runs."""
import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmark.run.manifest import Manifest

REPO = Path(__file__).resolve().parents[2]
MAIN_RUNS = REPO / "tests" / "fixtures" / "main_runs"
KNNCLIP = next((MAIN_RUNS / "demo_4steps" / "knnclip").iterdir())


def main_manifests() -> list[Path]:
    return sorted(MAIN_RUNS.glob("*/*/*/manifest.json"))


@pytest.fixture
def old_results(tmp_path) -> Path:
    """A results folder holding copies of main's run folders (complete, resumed and interrupted)."""
    shutil.copytree(MAIN_RUNS, tmp_path / "results", ignore=shutil.ignore_patterns("README.md"))
    return tmp_path / "results"


@pytest.mark.parametrize("path", main_manifests(), ids=lambda p: p.parent.name)
def test_a_manifest_written_by_main_reads_and_writes_back_unchanged(path, tmp_path):
    values = json.loads(path.read_text())
    manifest = Manifest.read(path)
    assert manifest.extra == {}  # every key main writes is a field
    assert list(manifest.to_dict()) == list(values)  # the same keys in the same order
    manifest.write(tmp_path)
    assert (tmp_path / "manifest.json").read_text() == path.read_text()


def test_main_manifests_hold_what_the_readers_use():
    complete = Manifest.read(KNNCLIP)  # a run folder reads as its manifest.json
    assert complete.status == "complete" and complete.method == "knnclip" and complete.stream == "demo_4steps"
    assert len(complete.step_classes) == 4 and complete.data["validation_images"] > 0
    assert complete.passes["backbone_images"] is not None and complete.plugins == []
    assert complete.isolate is False and complete.sandbox is False and complete.ground_truth_access is None
    resumed = Manifest.read(MAIN_RUNS / "demo_4steps" / "zeroshot" / "resumed")
    assert resumed.resumed[0]["previous"] == {"status": "interrupted", "failure": "KeyboardInterrupt"}
    interrupted = Manifest.read(MAIN_RUNS / "demo_4steps" / "zeroshot" / "interrupted")
    assert interrupted.failure == "KeyboardInterrupt" and interrupted.state_line() == "status 'interrupted'"


def test_missing_and_unknown_keys():
    old = Manifest.from_dict({"run_id": "r", "status": "complete", "stream": "s", "finished": None,
                              "from_the_future": {"x": 1}})
    assert old.method_source is None and old.protocol is None and old.data is None
    assert old.ground_truth_access is None and old.isolate is False
    assert old.extra == {"from_the_future": {"x": 1}}
    # None fields are left out, except `finished`; unknown keys are written back after the known ones
    assert old.to_dict() == {"run_id": "r", "status": "complete", "stream": "s", "finished": None,
                             "from_the_future": {"x": 1}}


def test_execution_falls_back_to_the_protocol_of_older_runs():
    older = Manifest(protocol={"ground_truth_access": None, "isolate": True, "sandbox": True})
    assert older.isolate is True and older.sandbox is True
    newer = Manifest(protocol={"ground_truth_access": None}, execution={"isolate": True, "sandbox": False})
    assert newer.isolate is True and newer.sandbox is False
    assert Manifest(protocol={"ground_truth_access": "oracle_proposals"}).ground_truth_access == "oracle_proposals"


def test_a_manifest_that_is_not_an_object_is_a_value_error(tmp_path):
    (tmp_path / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="does not hold a JSON object"):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(ValueError):
        Manifest.read(tmp_path)


def test_old_run_folders_load_and_tabulate(old_results, capsys):
    import benchmark.results
    from benchmark.leaderboard.command import main as leaderboard

    frame = benchmark.results.load(old_results)
    final = frame.query("group == 'stream' and metric == 'miou.final'").set_index("method")["value"]
    assert round(final["knnclip"], 2) == 27.34 and round(final["zeroshot"], 2) == 2.82
    assert leaderboard([f"results_dir={old_results}"]) == 0
    assert "demo_4steps/zeroshot/interrupted: status 'interrupted'" in capsys.readouterr().out
    with open(old_results / "leaderboard.csv") as handle:
        rows = {row["method"]: row for row in csv.DictReader(handle)}
    assert round(float(rows["knnclip"]["miou_final_mean"]), 2) == 27.34
    assert rows["knnclip"]["isolated"] == "False"


def test_report_recomputes_an_old_run(old_results, capsys):
    from benchmark.evaluation.report import main as report

    [run_dir] = (old_results / "demo_4steps" / "knnclip").iterdir()
    before = json.loads((run_dir / "summary.json").read_text())
    assert report([str(run_dir)]) == 0
    assert "27.34" in capsys.readouterr().out
    assert json.loads((run_dir / "summary.json").read_text())["metrics"] == before["metrics"]
    assert (run_dir / "plots" / "matrix_miou.png").is_file()


def test_the_writer_is_the_only_author_and_writes_main_s_keys_in_main_s_order(tmp_path):
    """create, finish and mark_ended give the keys main's code wrote, in its order."""
    from benchmark.config import load_config
    from benchmark.run.writer import RunWriter

    stream = SimpleNamespace(name="demo_4steps", version=1, hash="h", step_hashes=lambda: ["a"], step_classes=[[0]],
                             vocabulary=SimpleNamespace(name="demo_40"))
    cfg = load_config([f"results_dir={tmp_path}", "method=zeroshot", "quiet=true", "run_id=r"])
    protocol = {"ground_truth_access": None, "vocabulary": "seen", "preset": {}, "isolate": False, "sandbox": False}
    writer = RunWriter.create(cfg, stream, protocol=protocol, plugins=[])
    interrupted = json.loads((MAIN_RUNS / "demo_4steps" / "zeroshot" / "interrupted" / "manifest.json").read_text())
    writer.mark_ended(KeyboardInterrupt())
    written = json.loads((writer.run_dir / "manifest.json").read_text())
    assert list(written) == list(interrupted)
    assert written["protocol"] == protocol and written["plugins"] == [] and written["failure"] == "KeyboardInterrupt"
    RunWriter.mark_unresumable(writer.run_dir, "broken")
    marked = Manifest.read(writer.run_dir)
    assert (marked.status, marked.failure, marked.unresumable) == ("failed", "broken", "broken")
    assert list(marked.to_dict())[-2:] == ["failure", "unresumable"]
