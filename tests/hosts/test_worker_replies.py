"""isolate=true against a hostile worker: malformed replies, a worker that never answers, and processes it
leaves behind each end the run as `failed` in one line, or with the run."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHEATS = ROOT / "tests" / "cheats"
TINY = ("stream=demo_4steps", "eval.max_images=4", "stream.max_train_images_per_step=2", "eval.initial=false",
        "stream.num_steps=2")
HEADER = "import numpy as np\nfrom benchmark.method import SegmentationOutput\n"


@pytest.fixture
def hostile(monkeypatch, tmp_path):
    """hostile(plan source) -> a copy of tests/cheats/hostile on COVSEG_PATH with that plan.py."""
    def use(plan: str) -> Path:
        folder = tmp_path / "hostile"
        shutil.copytree(CHEATS / "hostile", folder)
        (folder / "plan.py").write_text(HEADER + plan)
        monkeypatch.setenv("COVSEG_PATH", str(folder))
        return folder

    return use


def failed_run(tmp_path: Path, method: str) -> dict:
    [run_dir] = (tmp_path / "results" / "demo_4steps" / method).iterdir()
    return json.loads((run_dir / "manifest.json").read_text())


# every malformed reply is checked through the parent's host in this process (a thread plays the worker); two of
# them also fail a whole run with its worker (the rest, with a worker each, are slow: the same path)
END_TO_END = {"predict-ints", "state_dict-file"}
MALFORMED = [(case_id, op, reply, expected) for case_id, op, reply, expected in [
    ("memory_bytes-negative", "memory_bytes", "lambda: -1",
     "reply to memory_bytes: expected a non-negative integer, got int -1"),
    ("memory_bytes-str", "memory_bytes", "lambda: '12'", "reply to memory_bytes: expected a non-negative integer, got str"),
    ("counters-str", "counters", "lambda: 'a map'",
     "reply to counters: expected a mapping of names to non-negative integers"),
    ("counters-negative", "counters", "lambda: {'backbone_images': -3}",
     "reply to counters: expected a mapping of names to non-negative"),
    ("predict-str", "predict", "lambda images, vocab: 'labels'",
     "reply to predict: expected a list of 4 SegmentationOutput"),
    ("predict-float", "predict",
     "lambda images, vocab: [SegmentationOutput(np.full(i.image.shape[:2], np.nan)) for i in images]",
     "reply to predict[0].sem_seg: expected an integer array, got float64 array"),
    ("predict-ints", "predict",
     "lambda images, vocab: [SegmentationOutput(np.full(i.image.shape[:2], 10**6)) for i in images]",
     "reply to predict[0].sem_seg: class id 1000000 is outside the dataset's 0..39"),
    ("predict-shape", "predict", "lambda images, vocab: [SegmentationOutput(np.zeros((2, 2), int)) for i in images]",
     "reply to predict[0].sem_seg: expected shape"),
    ("stream_metrics-str", "stream_metrics", "lambda scores, known: {'mine': 'high'}",
     "reply to stream_metrics: expected a mapping of names to numbers, got dict"),
    ("state_dict-str", "state_dict", "lambda: 'state'",
     "reply to state_dict: expected a mapping with keys pickle, files, got str"),
    ("state_dict-file", "state_dict", "lambda: {'pickle': b'', 'files': ['state-3.rows']}",
     "state file state-3.rows is not a file of its scratch folder (No such file or directory)"),
]]


@pytest.mark.parametrize("op, reply, expected", [pytest.param(*case, id=case_id)
                                                 for case_id, *case in MALFORMED])
def test_the_parent_refuses_a_malformed_reply_in_one_line(demo_root, op, reply, expected):
    """The host's side of the socket (restricted unpickling, the reply checks, the scratch folder) against a
    worker end that answers `op` with `reply`."""
    import socket
    import threading
    from multiprocessing.connection import Connection

    from benchmark.errors import UserError
    from benchmark.hosts.worker.channel import Channel
    from benchmark.hosts.worker.host import WorkerHost
    from benchmark.hosts.worker.scratch import Scratch
    from benchmark.data.types import ImageInput
    from benchmark.method import SegmentationOutput
    from streams.builder import open_dataset

    ours, theirs = socket.socketpair()
    worker = Channel(Connection(theirs.detach()), restricted=False)
    answer = eval(reply, {"np": np, "SegmentationOutput": SegmentationOutput})

    def play_the_worker():
        request = worker.recv()
        worker.send(("ok", answer(*request[1:])))

    host = WorkerHost(None, Channel(Connection(ours.detach()), restricted=True), Scratch(), "hostile_reply",
                      sandbox=False, timeout=60, num_classes=40)
    thread = threading.Thread(target=play_the_worker)
    thread.start()
    try:
        with pytest.raises(UserError) as raised:
            if op == "predict":
                val = open_dataset("demo", "val", demo_root)
                host.predict([ImageInput.of(val.load(i), panoptic=False) for i in range(4)], val.vocabulary)
            elif op == "stream_metrics":
                host.stream_metrics(None)  # what the scores hold does not matter to the reply's check
            else:
                getattr(host, op)()
    finally:
        thread.join(10)
        host.channel.close()
        worker.close()
        host.scratch.remove()
    message = str(raised.value)
    assert expected in message and message.startswith("method hostile_reply") and "\n" not in message


@pytest.mark.parametrize("op, reply, expected", [
    pytest.param(*case, id=case_id, marks=() if case_id in END_TO_END else pytest.mark.slow)
    for case_id, *case in MALFORMED])
def test_a_malformed_reply_fails_the_run_in_one_line(run_demo, hostile, tmp_path, op, reply, expected):
    from benchmark.errors import UserError

    hostile(f"OP = {op!r}\nREPLY = {reply}\n")
    with pytest.raises(UserError) as raised:
        run_demo("method=hostile_reply", "isolate=true", *TINY)
    message = str(raised.value)
    assert expected in message and message.startswith("method hostile_reply") and "\n" not in message
    assert failed_run(tmp_path, "hostile_reply")["status"] == "failed"


def test_a_worker_adds_stream_metrics_but_cannot_replace_the_parents(run_demo, hostile):
    hostile("OP = 'stream_metrics'\nREPLY = lambda scores, known: {'final': 100.0, 'bwt': 50.0, 'mine': 1.5}\n")
    _, summary = run_demo("method=hostile_reply", "isolate=true", *TINY)
    _, honest = run_demo("method=zeroshot", "isolate=true", *TINY)
    metrics = summary["metrics"]["miou"]
    assert metrics["mine"] == 1.5  # a metric of the worker's own: its value, for what it is worth
    assert {name: value for name, value in metrics.items() if name != "mine"} == honest["metrics"]["miou"]


def test_a_malformed_reply_exits_2_without_a_traceback(hostile, demo_root, tmp_path):
    hostile("OP = 'memory_bytes'\nREPLY = lambda: float('nan')\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "benchmark", "run", "method=hostile_reply", "isolate=true", *TINY,
                           f"data.root={demo_root}", f"results_dir={tmp_path / 'results'}", "quiet=true"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "reply to memory_bytes: expected a non-negative integer, got float nan" in done.stderr.splitlines()[-1]


def test_a_worker_that_never_answers_fails_the_run_after_isolate_timeout_s(run_demo, hostile, tmp_path, monkeypatch):
    """The host gets isolate_timeout_s; once its worker has started (which may take that long on a loaded
    machine), the test shortens the wait to 5 s so as not to sit out the whole timeout."""
    from benchmark.hosts.worker.host import WorkerError, WorkerHost

    start = WorkerHost.start.__func__

    def started_then_shortened(cls, cfg, *args, **kwargs):
        host = start(cls, cfg, *args, **kwargs)
        assert host.timeout == 30.0  # what isolate_timeout_s=30 asks for
        host.timeout = 5.0
        return host

    monkeypatch.setattr(WorkerHost, "start", classmethod(started_then_shortened))
    hostile("")
    began = time.monotonic()
    with pytest.raises(WorkerError, match=r"its worker sent nothing for 5 s during predict \(isolate_timeout_s=5\)"):
        run_demo("method=hostile_hang", "isolate=true", "isolate_timeout_s=30", *TINY)
    assert time.monotonic() - began < 300
    assert failed_run(tmp_path, "hostile_hang")["status"] == "failed"


def test_a_process_the_worker_leaves_behind_ends_with_the_run(run_demo, hostile, tmp_path):
    target = tmp_path / "summary.json"
    folder = hostile(f"TARGET = {str(target)!r}\n")
    run_demo("method=hostile_orphan", "isolate=true", *TINY)
    target.write_text("0.76")
    time.sleep(1.0)  # the grandchild, were it alive, rewrites the file every 0.1 s
    assert target.read_text() == "0.76"
    pid = int((tmp_path / "orphan.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert folder.is_dir()


def test_isolate_timeout_s_must_be_positive(run_demo):
    from benchmark.errors import UserError

    with pytest.raises(UserError, match="isolate_timeout_s must be a positive number of seconds, got 0"):
        run_demo("method=zeroshot", "isolate=true", "isolate_timeout_s=0", *TINY)
