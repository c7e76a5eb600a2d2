"""Every run folder ends in a state: a run that raises is marked `failed` with a one-line reason (Ctrl-C:
`interrupted`), the leaderboard lists such runs apart; avalanche strategies are checked before a folder exists."""
import json

import pytest

from benchmark.errors import UserError

SMALL = ("stream.num_steps=2", "eval.max_images=4", "stream.max_train_images_per_step=6")


def manifests(results):
    return [json.loads(p.read_text()) for p in sorted(results.glob("*/*/*/manifest.json"))]


@pytest.mark.parametrize("error, status, reason", [
    (RuntimeError("boom\nsecond line"), "failed", "RuntimeError: boom"),
    (KeyboardInterrupt(), "interrupted", "KeyboardInterrupt"),
])
def test_a_run_that_raises_is_marked_with_its_state_and_one_line_reason(run_demo, monkeypatch, tmp_path, error,
                                                                         status, reason):
    from baselines.zeroshot import ZeroShot

    calls = []

    def learn(self, step):
        calls.append(step.step)
        if step.step == 1:
            raise error

    monkeypatch.setattr(ZeroShot, "learn", learn)
    with pytest.raises(type(error)):
        run_demo("method=zeroshot", *SMALL)
    [manifest] = manifests(tmp_path / "results")
    assert manifest["status"] == status and manifest["failure"] == reason and manifest["finished"]
    assert calls == [0, 1]

    if status == "failed":  # the leaderboard lists it apart, with its reason, and ranks nothing from it
        from benchmark.reporting.leaderboard import main

        monkeypatch.undo()
        run_demo("method=zeroshot", *SMALL)
        assert main([f"results_dir={tmp_path / 'results'}"]) == 0
        markdown = (tmp_path / "results" / "LEADERBOARD.md").read_text()
        failed = markdown.split("## Failed runs")[1]
        assert "RuntimeError: boom" in failed and failed.count("demo_4steps/zeroshot/") == 2  # link text + target
        assert "1 incomplete run(s) ignored" in markdown


def test_resuming_a_failed_run_clears_its_failure_and_records_it(run_demo, monkeypatch, tmp_path):
    from baselines.zeroshot import ZeroShot

    real_learn = ZeroShot.learn

    def learn(self, step):
        if step.step == 1:
            raise RuntimeError("disk full")
        real_learn(self, step)

    monkeypatch.setattr(ZeroShot, "learn", learn)
    with pytest.raises(RuntimeError):
        run_demo("method=zeroshot", *SMALL)
    monkeypatch.undo()
    run_demo("method=zeroshot", *SMALL, "resume=auto")
    [manifest] = manifests(tmp_path / "results")
    assert manifest["status"] == "complete" and "failure" not in manifest
    assert manifest["resumed"][0]["previous"] == {"status": "failed", "failure": "RuntimeError: disk full"}


@pytest.mark.parametrize("overrides, message", [
    (["method.strategy=EWC"], "avalanche strategy EWC needs ewc_lambda; set +method.strategy_args.ewc_lambda=VALUE"),
    (["method.strategy=LwF"], "avalanche strategy LwF needs alpha, temperature; set +method.strategy_args.alpha=VALUE "
                              "+method.strategy_args.temperature=VALUE"),
    (["method.strategy=GEM"], "avalanche strategy GEM needs patterns_per_exp"),
    (["method.strategy=Replay", "+method.strategy_args.mem_sise=4"],
     "avalanche strategy Replay takes no argument 'mem_sise' (did you mean: mem_size"),
    (["method.strategy=Naive", "+method.strategy_args.train_epochs=4"], "method.strategy_args.train_epochs is set by"),
])
def test_avalanche_strategy_arguments_are_checked_before_a_run_folder_exists(demo_root, tmp_path, overrides, message):
    from benchmark.__main__ import main

    results = tmp_path / "results"
    argv = ["run", "method=avalanche", *overrides, f"data.root={demo_root}", f"results_dir={results}", "quiet=true"]
    with pytest.raises(UserError) as error:
        main([*argv, "--debug"])
    assert message in str(error.value) and "\n" not in str(error.value)
    assert main(argv) == 2
    assert not results.exists()


def test_gem_without_its_quadprog_solver_is_refused_in_one_line(monkeypatch):
    import qpsolvers

    from benchmark.config import load_config

    monkeypatch.setattr(qpsolvers, "available_solvers", [s for s in qpsolvers.available_solvers if s != "quadprog"])
    with pytest.raises(UserError, match="GEM solves its projections with the quadprog solver, which is not installed"):
        load_config(["method=avalanche", "method.strategy=GEM", "+method.strategy_args.patterns_per_exp=2"])


def test_threads_setting_is_applied_and_recorded_with_the_environment(run_demo, tmp_path):
    import torch

    before = torch.get_num_threads()
    try:
        run_demo("method=zeroshot", *SMALL, "threads=1")
    finally:
        torch.set_num_threads(before)
    [manifest] = manifests(tmp_path / "results")
    assert manifest["threads"] == 1 and manifest["environment"]["intra_op_threads"] == 1
    assert manifest["environment"]["torch"] == torch.__version__ and "OMP_NUM_THREADS" in manifest["environment"]["variables"]


def test_default_threads_are_the_usable_cores_divided_among_local_ranks(monkeypatch):
    import os

    from benchmark.runner import thread_count

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")
    assert thread_count(None) == 2 and thread_count(5) == 5
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what torchrun sets: respected
    assert thread_count(None) == 1


def test_run_files_get_the_users_umask_not_0600(tmp_path):
    import os
    import stat

    from benchmark.io import atomic_write_json

    previous = os.umask(0o027)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o640
