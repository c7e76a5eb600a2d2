"""Resumable runs and atomic writes: a run killed with SIGKILL mid-step resumes to the same summary."""
import json
import multiprocessing
import os
import signal

import pytest

from benchmark.config import load_config
from benchmark.errors import UserError
from benchmark.io import atomic_write_json
from benchmark.runner import run_stream


def _run_and_die_in_step(overrides, kill_step):
    """Child process: run, and SIGKILL ourselves in the middle of learning step `kill_step` (on the 4th training
    sample of that step: every method reads its training samples through `filter_sample`)."""
    import benchmark.method
    from streams.builder import FROZEN_DIR

    step_classes = json.loads((FROZEN_DIR / "demo_4steps.json").read_text())["step_classes"][kill_step]
    original = benchmark.method.filter_sample
    calls = []

    def filter_sample(sample, keep_classes):
        if list(keep_classes) == step_classes:
            calls.append(sample.image_id)
            if len(calls) == 4:
                os.kill(os.getpid(), signal.SIGKILL)
        return original(sample, keep_classes)

    benchmark.method.filter_sample = filter_sample
    run_stream(load_config(overrides))


METRIC_KEYS = ("metrics", "matrices", "seen", "memory_bytes", "trainable_parameters")


# knnclip in the default suite; the learning baselines' (half a minute each) under -m slow, which CI runs
@pytest.mark.parametrize("method, extra", [
    ("knnclip", []), pytest.param("finetune", [], marks=pytest.mark.slow),
    # every step's checkpoint in its own folder (checkpoints/step_NNN/): resumed from the latest
    pytest.param("knnclip", ["checkpoint.keep=all"], marks=pytest.mark.slow),
    # its training store goes to checkpoint side files (benchmark/disk_rows.py)
    pytest.param("joint", [], marks=pytest.mark.slow),
    # an avalanche strategy whose state (the replay buffer) lives in avalanche objects
    pytest.param("avalanche", ["method.strategy=Replay", "+method.strategy_args.mem_size=12", "method.epochs=2"],
                 marks=pytest.mark.slow),
], ids=["knnclip", "finetune", "knnclip-keep-all", "joint", "avalanche-replay"])
def test_sigkill_during_step_3_then_resume_gives_same_summary(demo_root, tmp_path, method, extra):
    from benchmark.method import METHODS
    from benchmark.plugins import load_methods

    load_methods()
    if method not in METHODS:
        pytest.skip(f"method {method} is not registered in this checkout")
    base = [f"method={method}", *extra, f"data.root={demo_root}", "quiet=true", "eval.max_images=24",
            "stream.max_train_images_per_step=30"]
    uninterrupted = run_stream(load_config([*base, f"results_dir={tmp_path / 'a'}"]))
    expected = json.loads((uninterrupted / "summary.json").read_text())

    crashed_args = [*base, f"results_dir={tmp_path / 'b'}", "run_id=crashed"]
    child = multiprocessing.get_context("spawn").Process(target=_run_and_die_in_step, args=(crashed_args, 2))
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL
    run_dir = tmp_path / "b" / "demo_4steps" / method / "crashed"
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"
    assert not (run_dir / "summary.json").exists()

    resumed = run_stream(load_config([*base, f"results_dir={tmp_path / 'b'}", "resume=auto"]))
    assert resumed == run_dir
    got = json.loads((run_dir / "summary.json").read_text())
    assert {k: got[k] for k in METRIC_KEYS if k in got} == {k: expected[k] for k in METRIC_KEYS if k in expected}
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
    if "checkpoint.keep=all" in extra:
        assert sorted(p.parent.name for p in run_dir.glob("checkpoints/*/checkpoint.pt")) == [
            f"step_{t:03d}" for t in range(4)]


def test_resume_refuses_another_config(demo_root, tmp_path):
    base = [f"data.root={demo_root}", "quiet=true", "eval.max_images=4", "stream.num_steps=2",
            "stream.max_train_images_per_step=4", f"results_dir={tmp_path}"]
    run_dir = run_stream(load_config([*base, "method=zeroshot"]))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    atomic_write_json(run_dir / "manifest.json", {**manifest, "status": "running"})
    with pytest.raises(UserError, match=r"another config \(seed: 0 -> 5"):
        run_stream(load_config([*base, "method=zeroshot", "seed=5", f"resume={run_dir}"]))
    with pytest.raises(UserError, match="not a run folder"):
        run_stream(load_config([*base, "method=zeroshot", f"resume={tmp_path}"]))


def test_crash_while_writing_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    atomic_write_json(target, {"final": 1.0})

    def crash(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        atomic_write_json(target, {"final": 2.0})
    assert json.loads(target.read_text()) == {"final": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left behind


def test_unwritable_results_dir_one_line(demo_root, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="cannot create the run folder .*results_dir="):
        run_stream(load_config(["method=zeroshot", f"data.root={demo_root}", f"results_dir={blocker / 'sub'}", "quiet=true"]))
