"""Every run folder ends in a state: a run that raises is marked `failed` with a one-line reason (Ctrl-C:
`interrupted`), the leaderboard lists such runs apart; avalanche strategies are checked before a folder exists.
SIGTERM and SIGHUP interrupt a run too; a full disk leaves nothing half-written, and a run whose process died
while it was `running` reads as `stale`."""
import json
import os

import pytest

from benchmark.errors import MethodError, UserError
from full_disk import fill_disk, full_disk

SMALL = ("stream.num_steps=2", "eval.max_images=4", "stream.max_train_images_per_step=6")


def manifests(results):
    return [json.loads(p.read_text()) for p in sorted(results.glob("*/*/*/manifest.json"))]


@pytest.mark.parametrize("error, status, reason", [  # the method's own exception comes out as a MethodError
    (RuntimeError("boom\nsecond line"), "failed", "method zeroshot failed in learn (step 1): RuntimeError: boom"),
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
    with pytest.raises(MethodError if isinstance(error, Exception) else type(error)):
        run_demo("method=zeroshot", *SMALL)
    [manifest] = manifests(tmp_path / "results")
    assert manifest["status"] == status and manifest["failure"] == reason and manifest["finished"]
    assert calls == [0, 1]

    if status == "failed":  # the leaderboard lists it apart, with its reason, and ranks nothing from it
        from benchmark.leaderboard.command import main

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
    with pytest.raises(MethodError):  # the method's own exception (benchmark.hosts.failure)
        run_demo("method=zeroshot", *SMALL)
    monkeypatch.undo()
    run_demo("method=zeroshot", *SMALL, "resume=auto")
    [manifest] = manifests(tmp_path / "results")
    assert manifest["status"] == "complete" and "failure" not in manifest
    assert manifest["resumed"][0]["previous"] == {"status": "failed", "failure": "method zeroshot failed in learn (step 1): RuntimeError: disk full"}


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


# ---------------------------------------------------------------- faults from outside: signals, a full disk, a dead process

def _main_stopping_in_step_1(argv, marker, fill_disk_from_step_1=False):
    """Child process: `python -m benchmark` with ZeroShot.learn of step 1 touching `marker` and then waiting
    (a SIGTERM arrives mid-step), or with the disk full for good from step 1's checkpoint on."""
    import pathlib
    import sys
    import time

    import benchmark.runner
    from baselines.zeroshot import ZeroShot
    from benchmark.__main__ import main

    def learn(self, step):
        if step.step == 1 and not fill_disk_from_step_1:
            pathlib.Path(marker).touch()
            time.sleep(60)

    ZeroShot.learn = learn
    if fill_disk_from_step_1:
        real_save = benchmark.runner.save_checkpoint

        def save_checkpoint(run_dir, step, state):
            if step == 1:
                fill_disk(0)  # and it stays full
            real_save(run_dir, step, state)

        benchmark.runner.save_checkpoint = save_checkpoint
    sys.exit(main(argv))


# SIGHUP takes SIGTERM's path (interrupt_on_signals; test_a_hangup_raises_like_a_termination_when_not_ignored):
# its run in a process of its own is slow
@pytest.mark.parametrize("signum", ["SIGTERM", pytest.param("SIGHUP", marks=pytest.mark.slow)])
def test_a_termination_signal_mid_step_marks_the_run_interrupted(demo_root, tmp_path, signum):
    """What SLURM sends at a time limit or on preemption (SIGTERM), or a closed terminal (SIGHUP): the run
    unwinds like Ctrl-C, its manifest says `interrupted`, and the process exits with 128 + the signal."""
    import multiprocessing
    import signal
    import time

    marker = tmp_path / "in_step_1"
    argv = ["run", "method=zeroshot", *SMALL, f"data.root={demo_root}", f"results_dir={tmp_path / 'results'}",
            "quiet=true"]
    child = multiprocessing.get_context("spawn").Process(target=_main_stopping_in_step_1, args=(argv, str(marker)))
    child.start()
    deadline = time.monotonic() + 60
    while not marker.exists() and child.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the child never reached step 1"
    os.kill(child.pid, getattr(signal, signum))
    child.join(30)
    assert child.exitcode == 128 + getattr(signal, signum)
    [manifest] = manifests(tmp_path / "results")
    assert manifest["status"] == "interrupted" and manifest["failure"] == f"Terminated: {signum}" and manifest["finished"]
    assert manifest["process"]["pid"] == child.pid


def test_signals_raise_once_and_ignored_ones_stay_ignored():
    """A signal ignored before the run (nohup ignores SIGHUP) stays ignored; the first SIGTERM raises, and puts
    the previous handler back for a second one."""
    import signal
    import time

    from benchmark.run.state import Terminated, interrupt_on_signals

    previous = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with pytest.raises(Terminated) as stopped, interrupt_on_signals():
            os.kill(os.getpid(), signal.SIGHUP)  # ignored: nothing happens
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # not reached: the handler raises as soon as os.kill returns
        assert stopped.value.signum == signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is previous[signal.SIGTERM]
    finally:
        for number, action in previous.items():
            signal.signal(number, action)


def test_a_hangup_raises_like_a_termination_when_not_ignored():
    """SIGHUP, when a handler of its own was set before (not ignored), raises Terminated named SIGHUP, which the
    run records as `Terminated: SIGHUP`; that handler is back afterwards."""
    import signal
    import time

    from benchmark.run.state import Terminated, interrupt_on_signals

    before = signal.getsignal(signal.SIGHUP)
    caught = []
    signal.signal(signal.SIGHUP, lambda signum, frame: caught.append(signum))  # if unhandled: recorded, not fatal
    own = signal.getsignal(signal.SIGHUP)
    try:
        with pytest.raises(Terminated) as stopped, interrupt_on_signals():
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(5)  # not reached
        assert stopped.value.signum == signal.SIGHUP and str(stopped.value) == "SIGHUP" and caught == []
        assert signal.getsignal(signal.SIGHUP) is own
    finally:
        signal.signal(signal.SIGHUP, before)


@pytest.mark.parametrize("free_bytes", [0, 3000, 9000], ids=["first-side-file", "second-side-file", "checkpoint"])
def test_a_full_disk_while_checkpointing_leaves_the_previous_checkpoint_whole(tmp_path, free_bytes):
    """Side files and checkpoint.pt are written under temporary names and renamed: wherever the disk fills up,
    nothing half-written is left, the previous step's checkpoint still loads, and the error names the folder."""
    import faiss
    import numpy as np

    from benchmark.run.checkpoint import load_checkpoint, save_checkpoint
    from benchmark.disk_rows import DiskRows

    def state(value):
        index = faiss.IndexFlatL2(4)
        index.add(np.full((100, 4), value, dtype=np.float32))  # 1.6 kB of vectors
        rows = DiskRows((4,), np.float32)
        rows.append(np.full((500, 4), value, dtype=np.float32))  # 8 kB
        return {"index": index, "rows": rows}

    save_checkpoint(tmp_path, 0, state(0.0))
    before = sorted(p.name for p in tmp_path.iterdir())
    with full_disk(free_bytes), pytest.raises(UserError, match=f"no space left on the device of {tmp_path} "):
        save_checkpoint(tmp_path, 1, state(1.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    restored = load_checkpoint(tmp_path)
    assert restored["completed_step"] == 0 and restored["method"]["index"].ntotal == 100
    assert np.all(restored["method"]["rows"].read(range(500)) == 0)


def test_a_full_disk_mid_run_is_recorded_as_failed(run_demo, monkeypatch, tmp_path):
    import benchmark.runner
    from benchmark.run.checkpoint import load_checkpoint

    real_save = benchmark.runner.save_checkpoint

    def save_checkpoint(run_dir, step, state):
        with full_disk(0 if step == 1 else 2**40):  # space is back by the time the manifest is written
            real_save(run_dir, step, state)

    monkeypatch.setattr(benchmark.runner, "save_checkpoint", save_checkpoint)
    with pytest.raises(UserError, match="no space left on the device"):
        run_demo("method=zeroshot", *SMALL)
    [run_dir] = (tmp_path / "results").glob("*/*/*")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["failure"].startswith(f"no space left on the device of {run_dir} (writing checkpoint.pt)")
    assert not list(run_dir.rglob("*.tmp")) and load_checkpoint(run_dir)["completed_step"] == 0


def test_a_run_whose_process_died_while_running_is_stale(demo_root, tmp_path, capsys):
    """The disk stays full, so not even the manifest can say `failed`: it keeps `running`, with the process
    (host, pid, start time), and once that process has ended readers show the run as `stale`."""
    import multiprocessing

    from benchmark.run.manifest import Manifest
    from benchmark.run.state import process_identity

    argv = ["run", "method=zeroshot", *SMALL, f"data.root={demo_root}", f"results_dir={tmp_path / 'results'}",
            "quiet=true"]
    child = multiprocessing.get_context("spawn").Process(target=_main_stopping_in_step_1,
                                                         args=(argv, "", True))
    child.start()
    child.join(60)
    assert child.exitcode == 2  # the one-line error
    [manifest] = manifests(tmp_path / "results")
    assert manifest["status"] == "running" and manifest["process"]["pid"] == child.pid
    assert Manifest.from_dict(manifest).observed_status() == "stale"
    from benchmark.evaluation.report import main as report
    from benchmark.leaderboard.runs import read_runs

    [run_dir] = (tmp_path / "results").glob("*/*/*")
    runs, [(skipped_dir, state)] = read_runs(tmp_path / "results")  # the leaderboard's "Unfinished runs"
    assert not runs and skipped_dir == run_dir and state.startswith(f"status 'stale' (left running by process {child.pid}")
    assert report([str(run_dir)]) == 0
    assert "is an unfinished run (status 'stale' (left running by process" in capsys.readouterr().out
    assert Manifest.from_dict({**manifest, "process": process_identity()}).observed_status() == "running"  # alive: this process
    elsewhere = {**manifest, "process": {**manifest["process"], "host": "elsewhere"}}
    assert Manifest.from_dict(elsewhere).observed_status() == "running"


def test_an_unreadable_checkpoint_is_reported_once_then_passed_over(run_demo, monkeypatch, tmp_path):
    """resume=auto on a run whose checkpoint cannot be read: one error naming the folder and how to start
    fresh, the run marked failed (no `resumed` record added); the same command then starts a new run."""
    from baselines.zeroshot import ZeroShot

    def learn(self, step):
        if step.step == 1:
            raise RuntimeError("crash")

    monkeypatch.setattr(ZeroShot, "learn", learn)
    with pytest.raises(MethodError):  # the method's own exception (benchmark.hosts.failure)
        run_demo("method=zeroshot", *SMALL)
    monkeypatch.undo()
    [broken] = (tmp_path / "results").glob("*/*/*")
    (broken / "checkpoint.pt").write_bytes(b"truncated")
    with pytest.raises(UserError) as error:
        run_demo("method=zeroshot", *SMALL, "resume=auto")
    message = str(error.value)
    assert f"cannot read checkpoint {broken / 'checkpoint.pt'}" in message and "starts fresh" in message
    assert "\n" not in message
    [manifest] = manifests(tmp_path / "results")
    assert "resumed" not in manifest and manifest["status"] == "failed" and manifest["unresumable"]

    run_dir, summary = run_demo("method=zeroshot", *SMALL, "resume=auto")
    assert run_dir != broken and summary["num_steps"] == 2
    assert "resumed" not in json.loads((broken / "manifest.json").read_text())


def test_resume_auto_passes_over_a_run_another_live_process_is_writing(tmp_path):
    import socket
    import subprocess
    import sys
    from types import SimpleNamespace

    from benchmark.config import load_config
    from benchmark.io import atomic_write_json
    from benchmark.run.resume import check_resumable, find_resumable
    from benchmark.run.writer import RunWriter

    stream = SimpleNamespace(name="demo_4steps", version=1, hash="h", step_hashes=lambda: ["a"], step_classes=[[0]],
                             vocabulary=SimpleNamespace(name="demo_40"))
    cfg = load_config([f"results_dir={tmp_path}", "method=zeroshot", "quiet=true"])
    writer = RunWriter.create(cfg, stream)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            atomic_write_json(writer.run_dir / "manifest.json", {
                **writer.manifest.to_dict(), "process": {"host": socket.gethostname(), "pid": other.pid, "start_ticks": None}})
            assert find_resumable(cfg, stream) is None
            with pytest.raises(UserError, match=f"still going \\(process {other.pid} on this host\\)"):
                check_resumable(writer.run_dir, cfg, stream)
        finally:
            other.kill()
    assert find_resumable(cfg, stream) == writer.run_dir  # its process ended: stale, and resumable
