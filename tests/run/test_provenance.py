"""Provenance on the leaderboard (issue #13): the manifest records a digest of the method's source files and
whether the git tree was dirty; the leaderboard marks dirty / changed / unregistered / unrecorded runs,
`--strict` leaves them out, and runs that used ground truth on purpose are kept apart from the ranking."""
import csv
import hashlib
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmark import provenance as provenance_module
from benchmark.__main__ import main as benchmark_main
from benchmark.config import load_config
from benchmark.errors import UserError
from benchmark.provenance import REPO_ROOT, current_source_state, git_state, method_source, source_digest
from benchmark.leaderboard.command import main
from benchmark.leaderboard.table import ANALYSIS_TITLE
from benchmark.run.writer import RunWriter
from run_folders import KNN_DEFAULTS, make_run


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def recorded_source(*paths: Path, registered: bool = True) -> dict:
    """A manifest's method_source for these files as they are now (absolute paths, as for a method from
    elsewhere; the leaderboard resolves relative ones against the repository)."""
    files = {Path(p).resolve().as_posix(): sha(p) for p in paths}
    return {"digest": source_digest(files), "files": files, "registered": registered, "untracked": []}


def leaderboard_csv(results: Path) -> list[dict]:
    with open(results / "leaderboard.csv") as handle:
        return list(csv.DictReader(handle))


# --- the manifest -------------------------------------------------------------------------------------------

def test_method_source_covers_the_module_its_package_and_its_bases():
    replay = method_source("replay")
    assert set(replay["files"]) == {"baselines/replay.py", "baselines/trainable.py", "benchmark/method.py"}
    knn = method_source("knnclip")
    package = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "methods" / "knnclip").glob("*.py")}
    assert set(knn["files"]) == package | {"benchmark/method.py"}
    for source in (replay, knn):
        assert source["registered"] is True
        assert all(source["files"][name] == sha(REPO_ROOT / name) for name in source["files"])
        assert source["digest"] == source_digest(source["files"]) and len(source["digest"]) == 64
        assert current_source_state(source) == (source["digest"], [])
    assert replay["digest"] != knn["digest"]


def test_method_from_outside_the_repository_is_unregistered(tmp_path, monkeypatch):
    from benchmark.method import METHODS, ContinualMethod

    module_file = tmp_path / "elsewhere_method.py"
    module_file.write_text("from benchmark.method import ContinualMethod\n\n"
                           "class Elsewhere(ContinualMethod):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import elsewhere_method

    assert issubclass(elsewhere_method.Elsewhere, ContinualMethod)
    monkeypatch.setitem(METHODS._entries, "elsewhere", elsewhere_method.Elsewhere)
    source = method_source("elsewhere")
    assert source["registered"] is False
    assert source["files"][module_file.resolve().as_posix()] == sha(module_file)
    assert "benchmark/method.py" in source["files"]


def _stream_stub():
    return SimpleNamespace(name="demo_4steps", version=1, hash="h", step_hashes=lambda: ["a", "b"],
                           step_classes=[[0], [1]], vocabulary=SimpleNamespace(name="demo_40"))


def test_run_manifest_has_method_digest_and_dirty_flag(tmp_path):
    cfg = load_config([f"results_dir={tmp_path / 'results'}", "method=replay", "quiet=true", "run_id=r1"])
    writer = RunWriter.create(cfg, _stream_stub())
    manifest = json.loads((writer.run_dir / "manifest.json").read_text())
    source = manifest["method_source"]
    assert source["digest"] == method_source("replay")["digest"]
    assert set(source["files"]) == {"baselines/replay.py", "baselines/trainable.py", "benchmark/method.py"}
    assert source["registered"] is True and source["class"] and source["module"] == "baselines.replay"
    assert manifest["git"]["dirty"] in (True, False)  # this is a checkout
    assert manifest["git"]["dirty"] == git_state()["dirty"]
    # a resumption records the code it resumed with
    reopened = RunWriter.reopen(writer.run_dir, cfg, _stream_stub())
    resumption = reopened.manifest.resumed[-1]
    assert resumption["method_source"]["digest"] == source["digest"] and "dirty" in resumption["git"]


def test_dirty_flag_follows_git_status(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance_module, "REPO_ROOT", tmp_path)
    assert git_state()["dirty"] is None and git_state()["commit"] is None  # not a git checkout

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("commit", "-q", "-m", "a")
    clean = git_state()
    assert clean["dirty"] is False and len(clean["commit"]) == 40
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_state()["dirty"] is True and git_state()["changes"] == ["a.py"]
    git("checkout", "-q", "--", "a.py")
    (tmp_path / "new_method.py").write_text("")  # an untracked file is a change too
    assert git_state()["dirty"] is True


def test_a_wheel_install_records_its_distribution_and_a_venv_is_not_a_change(tmp_path, monkeypatch):
    """A wheel installed into a .venv inside some checkout: git answers for that checkout, not for the installed
    files, so the manifest records the distribution (version, RECORD digest) instead; a virtual environment
    made inside a checkout does not make its tree dirty."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "a"],
                   cwd=tmp_path, check=True)
    site = tmp_path / ".venv" / "lib" / "python3" / "site-packages"
    dist_info = site / "covseg_bench-0.1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: covseg-bench\nVersion: 0.1.0\n")
    (dist_info / "RECORD").write_text("benchmark/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n")
    (tmp_path / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    monkeypatch.setattr(provenance_module, "REPO_ROOT", site)
    state = git_state()
    assert state["commit"] is None and state["dirty"] is None
    assert state["distribution"] == {"name": "covseg-bench", "version": "0.1.0",
                                     "record_sha256": sha(dist_info / "RECORD")}

    monkeypatch.setattr(provenance_module, "REPO_ROOT", tmp_path)  # the checkout itself, with its .venv untracked
    assert git_state()["dirty"] is False
    (tmp_path / "notes.txt").write_text("")
    assert git_state()["changes"] == ["notes.txt"]  # anything else untracked still counts


def test_a_run_from_a_wheel_has_provenance_on_the_leaderboard():
    from benchmark.leaderboard.runs import provenance_issues
    from benchmark.run.manifest import Manifest

    source = method_source("knnclip")
    wheel = {"commit": None, "dirty": None, "changes": [],
             "distribution": {"name": "covseg-bench", "version": "0.1.0", "record_sha256": "ab" * 32}}
    assert provenance_issues(Manifest(method_source=source, git=wheel)) == []
    bare = {"commit": None, "dirty": None, "changes": [], "distribution": None}  # neither git nor an installed copy
    assert provenance_issues(Manifest(method_source=source, git=bare)) == ["no provenance"]


# --- the leaderboard ----------------------------------------------------------------------------------------

@pytest.fixture
def provenance_runs(tmp_path):
    """clean (knnclip), changed (its copied source edited after the run), dirty, unregistered, old (no
    method_source), oracle (ground truth on purpose, best score)."""
    root = tmp_path / "results"
    source_copy = tmp_path / "copied_method.py"
    source_copy.write_text("def predict():\n    return 1\n")
    clean = {"method_source": method_source("knnclip"), "git": {"commit": "abc", "dirty": False}}
    make_run(root, "clean", KNN_DEFAULTS, 30.0, manifest_extra=clean)
    make_run(root, "changed", {**KNN_DEFAULTS, "k": 2}, 35.0,
             manifest_extra={"method_source": recorded_source(source_copy)})
    source_copy.write_text("def predict():\n    return 2  # edited after the run\n")
    make_run(root, "dirty", {**KNN_DEFAULTS, "k": 3}, 25.0,
             manifest_extra={**clean, "git": {"commit": "abc", "dirty": True}})
    make_run(root, "unregistered", {**KNN_DEFAULTS, "k": 4}, 20.0,
             manifest_extra={"method_source": {**method_source("knnclip"), "registered": False}})
    make_run(root, "old", {"name": "zeroshot"}, 10.0)
    make_run(root, "oracle", KNN_DEFAULTS, 90.0,
             manifest_extra={**clean, "protocol": {"ground_truth_access": "oracle_proposals", "vocabulary": "seen"}})
    return root


def test_leaderboard_marks_changed_dirty_unregistered_and_old_runs(provenance_runs, capsys):
    assert main([f"results_dir={provenance_runs}"]) == 0
    assert "4 run(s) marked for provenance" in capsys.readouterr().out
    rows = {r["runs"].split("/")[-1]: r for r in leaderboard_csv(provenance_runs)}
    assert rows["clean"]["provenance"] == ""
    assert rows["changed"]["provenance"] == "source changed since run=1"
    assert rows["dirty"]["provenance"] == "dirty tree=1"
    assert rows["unregistered"]["provenance"] == "unregistered source=1"
    assert rows["old"]["provenance"] == "no provenance=1"
    markdown = (provenance_runs / "LEADERBOARD.md").read_text()
    line = {run: next(l for l in markdown.splitlines() if f"/{run}/)" in l) for run in rows}
    assert "| ok |" in line["clean"]
    assert "‡ source changed since run" in line["changed"] and "changed/)‡" in line["changed"]
    assert "† dirty tree" in line["dirty"] and "§ unregistered source" in line["unregistered"]
    assert "? no provenance" in line["old"]
    assert "- ‡ source changed since run:" in markdown and "- † dirty tree:" in markdown  # the footnotes


def test_strict_leaves_marked_runs_out_and_says_how_many(provenance_runs, capsys):
    assert benchmark_main(["leaderboard", f"results_dir={provenance_runs}", "--strict"]) == 0
    out = capsys.readouterr().out
    assert "--strict: left out 4 run(s) without clean provenance" in out
    assert "changed: source changed since run" in out and "old: no provenance" in out
    rows = leaderboard_csv(provenance_runs)
    assert sorted(r["runs"].split("/")[-1] for r in rows) == ["clean", "oracle"]
    markdown = (provenance_runs / "LEADERBOARD.md").read_text()
    assert "4 run(s) without clean provenance left out by --strict" in markdown
    assert "changed/" not in markdown and "| ok |" in markdown


def test_strict_with_only_marked_runs_is_a_user_error(tmp_path):
    root = tmp_path / "results"
    make_run(root, "old", KNN_DEFAULTS, 10.0)
    with pytest.raises(UserError, match="all 1 complete run.*no provenance"):
        main([f"results_dir={root}", "--strict"])
    with pytest.raises(UserError, match="unknown flag '--strikt'.*did you mean: --strict"):
        main([f"results_dir={root}", "--strikt"])


def test_oracle_runs_are_listed_apart_from_the_ranking(provenance_runs):
    main([f"results_dir={provenance_runs}"])
    rows = leaderboard_csv(provenance_runs)
    ranking = [r for r in rows if r["section"] == "ranking"]
    analysis = [r for r in rows if r["section"] == "analysis"]
    assert [r["runs"].split("/")[-1] for r in analysis] == ["oracle"]
    assert analysis[0]["ground_truth_access"] == "oracle_proposals" and analysis[0]["rank"] == ""
    assert analysis[0]["label"] == "knnclip [ground truth: oracle_proposals]"
    assert ranking[0]["runs"].endswith("/changed") and ranking[0]["rank"] == "1"  # 90.0 is not ranked
    assert all(r["ground_truth_access"] == "" for r in ranking)
    markdown = (provenance_runs / "LEADERBOARD.md").read_text()
    ranked_part, analysis_part = markdown.split(f"## {ANALYSIS_TITLE}")
    assert "oracle/" not in ranked_part and "oracle/" in analysis_part and "90.0" in analysis_part
    assert "| – | knnclip [ground truth: oracle_proposals] |" in analysis_part


def test_plugin_code_records_and_what_lies_in_the_repository(tmp_path, monkeypatch):
    from benchmark.provenance import code_records, in_repo, plugin_records

    module = tmp_path / "mine.py"
    module.write_text("x = 1\n")
    assert code_records({"mine": module, "gone": tmp_path / "gone.py"}) == [
        {"module": "mine", "path": str(module), "sha256": sha(module)}]  # a file no longer on disk is left out
    assert in_repo(REPO_ROOT / "benchmark" / "runner.py") and not in_repo(module)
    assert not in_repo(REPO_ROOT / ".venv" / "lib" / "site-packages" / "x.py")  # an environment inside the checkout
    monkeypatch.setenv("COVSEG_PATH", str(tmp_path))
    assert {"module": "mine", "path": str(module.resolve()), "sha256": sha(module)} in plugin_records("knnclip")
