"""run_stream over both method hosts: the same config run with the method in this process and in its worker
(isolate=true) writes the same raw statistics, bit for bit, and the same summary; the manifest records where
the method ran, and a run is resumed only on the host it started on."""
import json

import numpy as np
import pytest

from benchmark.errors import UserError

# two steps of the demo stream, few images; no disk feature cache, so both runs compute every feature
SHORT = ("method=knnclip", "stream=demo_4steps", "stream.num_steps=2", "eval.max_images=3",
         "stream.max_train_images_per_step=4", "model.cache_dir=off")


def manifest(run_dir):
    return json.loads((run_dir / "manifest.json").read_text())


def raw_statistics(run_dir) -> dict[str, dict[str, np.ndarray]]:
    return {path.name: dict(np.load(path)) for path in sorted((run_dir / "stats").glob("*.npz"))}


def test_both_hosts_write_identical_raw_statistics(run_demo):
    in_process_dir, in_process = run_demo(*SHORT)
    worker_dir, worker = run_demo(*SHORT, "isolate=true")
    expected, got = raw_statistics(in_process_dir), raw_statistics(worker_dir)
    assert sorted(expected) == sorted(got) == ["initial.npz", "step_000.npz", "step_001.npz"]
    for name, arrays in expected.items():
        assert sorted(arrays) == sorted(got[name]), name
        for key, values in arrays.items():
            assert values.dtype == got[name][key].dtype and np.array_equal(values, got[name][key]), (name, key)
    varying = ("run_id", "seconds")
    assert {k: v for k, v in in_process.items() if k not in varying} == {k: v for k, v in worker.items() if k not in varying}
    assert manifest(in_process_dir)["execution"] == {"isolate": False, "sandbox": False}
    assert manifest(worker_dir)["execution"] == {"isolate": True, "sandbox": False}
    assert "isolate" not in manifest(worker_dir)["protocol"]
    # the models' work counters come from the method's process either way
    assert manifest(in_process_dir)["passes"] == manifest(worker_dir)["passes"]
    assert manifest(worker_dir)["passes"]["backbone_images"] > 0


def test_a_run_resumes_only_on_the_host_it_started_on(run_demo, monkeypatch, tmp_path):
    """A checkpoint holds the method's state as its host wrote it (in-process: the state itself; a worker's:
    opaque bytes): resuming with isolate flipped is refused in one line, before any step runs."""
    import benchmark.runner as runner

    evaluate_step = runner.evaluate_step

    def interrupted_at_step_1(ctx, vocab, step):
        if step == 1:
            raise KeyboardInterrupt
        return evaluate_step(ctx, vocab, step)

    monkeypatch.setattr(runner, "evaluate_step", interrupted_at_step_1)
    with pytest.raises(KeyboardInterrupt):
        run_demo(*SHORT, "run_id=cut", "eval.initial=false")
    monkeypatch.setattr(runner, "evaluate_step", evaluate_step)
    run_dir = tmp_path / "results" / "demo_4steps" / "knnclip" / "cut"
    assert manifest(run_dir)["status"] == "interrupted"
    with pytest.raises(UserError, match="that run has another config .*isolate") as refused:
        run_demo(*SHORT, f"resume={run_dir}", "eval.initial=false", "isolate=true")
    assert "\n" not in str(refused.value)
    assert manifest(run_dir)["status"] == "interrupted"  # still resumable where it started
    _, resumed = run_demo(*SHORT, f"resume={run_dir}", "eval.initial=false")
    assert len(resumed["matrices"]["miou"]) == 2


def test_the_runner_knows_no_isolation():
    """Where the method lives is the hosts' business (benchmark.hosts.make_host), never the runner's."""
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "benchmark" / "runner.py").read_text().lower()
    assert "isolat" not in source
