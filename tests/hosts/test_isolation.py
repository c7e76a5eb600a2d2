"""isolate=true: the cheating plugins of tests/cheats/ reach 100 mIoU in-process and score like chance (or are
recorded truthfully) when the method lives in its worker; honest methods give the same numbers either way."""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

CHEATS = Path(__file__).parents[1] / "cheats"
# demo_4steps, 4 validation images, 2 training images per step: enough for every cheat to show
TINY = ("stream=demo_4steps", "eval.max_images=4", "stream.max_train_images_per_step=2", "eval.initial=false")
CHANCE = 20.0  # far above what zero-shot with random weights reaches on 40 classes, far below a cheat's 100


@pytest.fixture
def covseg_path(monkeypatch):
    """covseg_path(*folders of tests/cheats) puts them on COVSEG_PATH for one test, and undoes afterwards what
    importing them did to this process (in-process runs import them; isolated runs must not)."""
    import benchmark.provenance as provenance
    from benchmark.evaluation.semantic import SemanticEvaluator
    from benchmark.method import METHODS
    from benchmark.models.segmenter import PROMPT_TEMPLATES

    saved = (SemanticEvaluator.process, provenance.method_source, dict(PROMPT_TEMPLATES), set(sys.modules), list(sys.path))

    def use(*folders: str) -> None:
        monkeypatch.setenv("COVSEG_PATH", os.pathsep.join(str(CHEATS / folder) for folder in folders))

    yield use
    SemanticEvaluator.process, provenance.method_source = saved[0], saved[1]
    PROMPT_TEMPLATES.clear()
    PROMPT_TEMPLATES.update(saved[2])
    for name in [name for name in METHODS.names() if from_cheats(sys.modules.get(METHODS.get(name).__module__))]:
        del METHODS._entries[name]
    for name in set(sys.modules) - saved[3]:
        if from_cheats(sys.modules[name]):
            del sys.modules[name]
    sys.path[:] = saved[4]


def from_cheats(module) -> bool:
    return CHEATS in Path(getattr(module, "__file__", None) or "/").parents


def final(summary: dict) -> float:
    return summary["metrics"]["miou"]["final"]


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def assert_parent_untouched(*modules: str) -> None:
    from benchmark.evaluation.semantic import SemanticEvaluator

    assert not set(modules) & set(sys.modules), "the parent imported plugin code"
    assert SemanticEvaluator.process.__module__ == "benchmark.evaluation.semantic"


# one reflection cheat in the default suite; the other two (a worker each) reach the same wall: slow
@pytest.mark.parametrize("method", [pytest.param("cheat_gc", marks=pytest.mark.slow),
                                    pytest.param("cheat_frames", marks=pytest.mark.slow), "cheat_closure"])
def test_a_method_reaching_for_labels_scores_like_chance_only_under_isolation(run_demo, covseg_path, method):
    covseg_path("peek")
    isolated_dir, isolated = run_demo(f"method={method}", "isolate=true", *TINY)
    assert_parent_untouched("peek")
    assert final(isolated) < CHANCE and manifest(isolated_dir)["execution"]["isolate"] is True
    _, in_process = run_demo(f"method={method}", *TINY)
    assert final(in_process) > 99  # the cheat works where it can reach the labels


@pytest.mark.parametrize("isolate", ["false", "true"])
def test_mutating_the_vocabulary_handed_to_predict_does_not_change_what_is_scored(run_demo, covseg_path, demo_root,
                                                                                  isolate):
    from benchmark.data.types import IGNORE_LABEL
    from streams.builder import open_dataset

    covseg_path("peek")
    run_dir, summary = run_demo("method=cheat_vocab", f"isolate={isolate}", *TINY)
    val = open_dataset("demo", "val", demo_root)
    labelled = sum(int((val.load(i).sem_seg != IGNORE_LABEL).sum()) for i in range(4))
    # after the last step every class is seen: every labelled pixel is scored, not only those of the one class
    # the method left in the vocabulary object it was handed
    assert np.load(run_dir / "stats" / "step_003.npz")["confusion"].sum() == labelled
    assert final(summary) < CHANCE


def test_a_plugin_patching_the_evaluator_changes_nothing_under_isolation_and_is_recorded(run_demo, covseg_path):
    covseg_path("patch_evaluator")
    isolated_dir, isolated = run_demo("method=zeroshot", "isolate=true", *TINY)
    assert_parent_untouched("patch_evaluator")
    assert final(isolated) < CHANCE
    in_process_dir, in_process = run_demo("method=zeroshot", *TINY)
    assert final(in_process) > 99
    for run_dir in (isolated_dir, in_process_dir):
        [plugin] = manifest(run_dir)["plugins"]
        assert plugin == {"module": "patch_evaluator", "path": str(CHEATS / "patch_evaluator" / "patch_evaluator.py"),
                          "sha256": plugin["sha256"]} and len(plugin["sha256"]) == 64


def test_provenance_is_computed_by_the_parent_under_isolation(run_demo, covseg_path):
    covseg_path("forge")
    isolated_dir, _ = run_demo("method=forged", "isolate=true", *TINY)
    assert_parent_untouched("forge")
    source = manifest(isolated_dir)["method_source"]
    assert source["module"] == "forge" and source["registered"] is False
    assert "tests/cheats/forge/forge.py" in source["files"]  # a path relative to the repository, which holds it
    in_process_dir, _ = run_demo("method=forged", *TINY)
    assert manifest(in_process_dir)["method_source"]["registered"] is True  # forged where the plugin runs


def test_foreign_code_is_listed_even_when_it_registers_no_method(run_demo, covseg_path):
    covseg_path("prompts")
    run_dir, _ = run_demo("method=zeroshot", *TINY)
    [plugin] = manifest(run_dir)["plugins"]
    assert plugin["module"] == "prompts" and len(plugin["sha256"]) == 64


def numbers(summary: dict) -> dict:
    return {k: summary[k] for k in ("metrics", "matrices", "seen", "memory_bytes", "trainable_parameters")}


@pytest.mark.slow  # a worker and two runs; tests/run/test_runner.py compares both hosts bit for bit by default
def test_zero_shot_gives_the_same_numbers_isolated(run_demo):
    short = (*TINY, "stream.num_steps=3")
    _, reference = run_demo("method=zeroshot", *short)
    _, isolated = run_demo("method=zeroshot", "isolate=true", *short)
    assert numbers(isolated) == numbers(reference)


@pytest.mark.slow  # ~10 s: two workers and two runs; CI runs it with -m slow
def test_knnclip_isolated_and_resumed_in_a_new_worker_gives_the_same_numbers(run_demo, monkeypatch, tmp_path):
    """Interrupted before step 2's evaluation, resumed in a new worker whose state (a faiss index) came back
    through the parent's checkpoint."""
    import benchmark.runner as runner

    short = (*TINY, "stream.num_steps=3")
    _, reference = run_demo("method=knnclip", *short)
    evaluate_step = runner.evaluate_step

    def interrupted_at_step_2(ctx, vocab, step):
        if step == 2:
            raise KeyboardInterrupt
        return evaluate_step(ctx, vocab, step)

    monkeypatch.setattr(runner, "evaluate_step", interrupted_at_step_2)
    with pytest.raises(KeyboardInterrupt):
        run_demo("method=knnclip", "isolate=true", "run_id=cut", *short)
    monkeypatch.setattr(runner, "evaluate_step", evaluate_step)
    run_dir = tmp_path / "results" / "demo_4steps" / "knnclip" / "cut"
    assert manifest(run_dir)["status"] == "interrupted"
    _, resumed = run_demo("method=knnclip", "isolate=true", f"resume={run_dir}", *short)
    assert numbers(resumed) == numbers(reference)


CRASHING = '''
import os

from baselines.zeroshot import ZeroShot
from benchmark.method import register_method


@register_method("crash_raise")
class Raising(ZeroShot):
    def learn(self, step):
        if step.step == 1:
            raise ZeroDivisionError("a bug in the method")


@register_method("crash_exit")
class Exiting(ZeroShot):
    def learn(self, step):
        if step.step == 1:
            os._exit(3)
'''


@pytest.mark.parametrize("method, reason", [
    ("crash_raise", "method crash_raise failed in learn (step 1): ZeroDivisionError: a bug in the method"),
    ("crash_exit", "method crash_exit: its worker died during learn (exit code 3)"),
])
def test_a_crashing_worker_fails_the_run_with_one_line(run_demo, monkeypatch, tmp_path, method, reason):
    from benchmark.errors import MethodError
    from benchmark.hosts.worker.host import WorkerError

    folder = tmp_path / "crashing"
    (folder / "configs" / "method").mkdir(parents=True)
    (folder / "crashing.py").write_text(CRASHING)
    for name in ("crash_raise", "crash_exit"):
        (folder / "configs" / "method" / f"{name}.yaml").write_text(f"name: {name}\n")
    monkeypatch.setenv("COVSEG_PATH", str(folder))
    with pytest.raises((MethodError, WorkerError)) as raised:  # the method's own exception, or its worker died
        run_demo(f"method={method}", "isolate=true", *TINY)
    assert str(raised.value).startswith(reason) and "\n" not in str(raised.value)
    [run_dir] = (tmp_path / "results" / "demo_4steps" / method).iterdir()
    assert manifest(run_dir)["status"] == "failed" and manifest(run_dir)["failure"].startswith(reason)
    assert (run_dir / "stats" / "step_000.npz").is_file()  # step 0 stays, for the record


@pytest.mark.slow  # ~10 s: two workers and two runs; CI runs it with -m slow
def test_isolation_alone_does_not_stop_reading_labels_from_disk_but_the_sandbox_does(run_demo, monkeypatch,
                                                                                     tmp_path, demo_root):
    import shutil

    from benchmark.confine.landlock import landlock_abi

    if not landlock_abi():
        pytest.skip("Linux Landlock is not available here")
    folder = tmp_path / "disk"
    shutil.copytree(CHEATS / "disk", folder)
    (folder / "guessed_root.txt").write_text(str(demo_root))
    monkeypatch.setenv("COVSEG_PATH", str(folder))
    _, isolated = run_demo("method=cheat_disk", "isolate=true", *TINY)
    assert final(isolated) > 99  # what the README says isolation does not stop
    run_dir, sandboxed = run_demo("method=cheat_disk", "isolate=true", "sandbox=true", *TINY)
    assert final(sandboxed) < CHANCE and manifest(run_dir)["execution"]["sandbox"] is True


def test_the_worker_environment_holds_no_data_or_results_paths(monkeypatch, tmp_path):
    from benchmark.hosts.worker.host import HARNESS_ROOT, worker_environment

    monkeypatch.setenv("DETECTRON2_DATASETS", "/data")
    monkeypatch.setenv("COVSEG_RESULTS", "/results")
    monkeypatch.setenv("COVSEG_PATH", "/plugins")
    env = worker_environment(tmp_path)
    assert "DETECTRON2_DATASETS" not in env and "COVSEG_RESULTS" not in env and env["COVSEG_PATH"] == "/plugins"
    assert env["TMPDIR"] == str(tmp_path) and env["PYTHONPATH"].split(os.pathsep)[0] == str(HARNESS_ROOT)


# --- the leaderboard ----------------------------------------------------------------------------------------

def test_leaderboard_marks_foreign_code_and_isolated_runs_and_ranks_isolated_only(tmp_path, capsys):
    import csv

    import yaml

    from benchmark.leaderboard.command import main
    from benchmark.provenance import method_source
    from run_folders import KNN_DEFAULTS, make_run

    root = tmp_path / "results"
    clean = {"method_source": method_source("knnclip"), "git": {"commit": "abc", "dirty": False}}
    make_run(root, "in_process", KNN_DEFAULTS, 30.0, manifest_extra=clean)
    isolated = make_run(root, "isolated", KNN_DEFAULTS, 30.0, manifest_extra={
        **clean, "protocol": {"ground_truth_access": None}, "execution": {"isolate": True, "sandbox": False}})
    # a run folder written before the manifest had `execution`: isolate under `protocol`
    isolated_old = make_run(root, "isolated_old", {**KNN_DEFAULTS, "k": 3}, 30.0,
                            manifest_extra={**clean, "protocol": {"ground_truth_access": None, "isolate": True}})
    for run_dir in (isolated, isolated_old):
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        (run_dir / "config.yaml").write_text(yaml.safe_dump({**config, "isolate": True}))
    plugin = {"module": "prompts", "path": "/somewhere/prompts.py", "sha256": "0" * 64}
    make_run(root, "foreign", {**KNN_DEFAULTS, "k": 2}, 99.0, manifest_extra={**clean, "plugins": [plugin]})

    def rows() -> dict:
        with open(root / "leaderboard.csv") as handle:
            return {r["runs"].split("/")[-1]: r for r in csv.DictReader(handle)}

    assert main([f"results_dir={root}"]) == 0
    ranked = rows()
    assert ranked["foreign"]["provenance"] == "foreign code=1" and ranked["in_process"]["provenance"] == ""
    assert ranked["isolated"]["isolated"] == ranked["isolated_old"]["isolated"] == "True"
    assert ranked["in_process"]["isolated"] == "False"
    assert "[isolated]" in ranked["isolated"]["label"] and "[isolated]" not in ranked["in_process"]["label"]
    assert "¶ foreign code" in (root / "LEADERBOARD.md").read_text()
    assert main([f"results_dir={root}", "--strict"]) == 0
    assert sorted(rows()) == ["in_process", "isolated", "isolated_old"]
    capsys.readouterr()
    assert main([f"results_dir={root}", "--isolated-only"]) == 0
    assert sorted(rows()) == ["isolated", "isolated_old"]
    assert "--isolated-only: left out 2 run(s)" in capsys.readouterr().out
