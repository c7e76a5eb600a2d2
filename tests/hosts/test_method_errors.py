"""A method whose code raises: one line naming the method, the call, the step and the exception, then the
method's own frames (not the harness's), exit 1 and a failed run, the same in-process and under isolation;
debug=true prints every frame. A worker's frames are untrusted text: the parent cleans and cuts them."""
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ("stream=demo_4steps", "eval.max_images=4", "stream.max_train_images_per_step=2", "eval.initial=false",
        "stream.num_steps=2", "quiet=true")
RAISING = '''
from baselines.zeroshot import ZeroShot
from benchmark.method import register_method


def check_step(step):
    if step.step == 1:
        raise ZeroDivisionError("a bug in the method")


@register_method("raises_in_learn")
class RaisesInLearn(ZeroShot):
    def learn(self, step):
        check_step(step)
'''
FIRST_LINE = "error: method raises_in_learn failed in learn (step 1): ZeroDivisionError: a bug in the method"


@pytest.fixture
def raising_plugin(monkeypatch, tmp_path):
    """A COVSEG_PATH folder with method `raises_in_learn`; what importing it did to this process is undone."""
    from benchmark.method import METHODS

    folder = tmp_path / "plugin"
    (folder / "configs" / "method").mkdir(parents=True)
    (folder / "raising_method.py").write_text(RAISING)
    (folder / "configs" / "method" / "raises_in_learn.yaml").write_text("# Raises in learn at step 1.\n"
                                                                         "name: raises_in_learn\n")
    monkeypatch.setenv("COVSEG_PATH", str(folder))
    saved_path = list(sys.path)
    yield folder
    METHODS._entries.pop("raises_in_learn", None)
    sys.modules.pop("raising_method", None)
    sys.path[:] = saved_path


def run_cli(capsys, demo_root, results: Path, *overrides: str) -> tuple[int, str]:
    from benchmark.__main__ import main

    code = main(["run", "method=raises_in_learn", *TINY, f"data.root={demo_root}", f"results_dir={results}",
                 *overrides])
    return code, capsys.readouterr().err


def manifest(results: Path) -> dict:
    [path] = results.glob("demo_4steps/raises_in_learn/*/manifest.json")
    return json.loads(path.read_text())


@pytest.mark.parametrize("debug", [False, pytest.param(True, marks=pytest.mark.slow)])  # ~10 s each
def test_a_raising_method_reports_alike_in_process_and_isolated(raising_plugin, demo_root, tmp_path, capsys,
                                                                one_thread, debug):
    reports = {}
    for isolate in ("false", "true"):
        results = tmp_path / f"isolate-{isolate}-debug-{debug}"
        code, err = run_cli(capsys, demo_root, results, f"isolate={isolate}", f"debug={str(debug).lower()}")
        lines = err.strip().splitlines()
        assert code == 1, err
        assert lines[0] == FIRST_LINE
        assert 'raise ZeroDivisionError("a bug in the method")' in err and "in check_step" in err
        assert "raising_method.py" in err and "    check_step(step)" in err  # the method's own frames
        assert ("benchmark/runner.py" in err) is debug  # the harness's frames: only with debug=true
        assert "Traceback" not in err or debug
        assert manifest(results)["status"] == "failed"
        assert manifest(results)["failure"] == FIRST_LINE.removeprefix("error: ")
        reports[isolate] = err
    if not debug:
        assert reports["false"] == reports["true"]  # the same report wherever the method ran


def test_a_worker_s_frames_are_cleaned_cut_and_checked():
    from benchmark.errors import MAX_FRAMES, TEXT_LIMITS, MethodError
    from benchmark.hosts.worker.host import WorkerHost
    from benchmark.hosts.worker.replies import ReplyError

    host = SimpleNamespace(name="hostile")
    frame = {"file": "/x/\x1b[2J\u202eevil.py" + "a" * 10_000, "line": 3, "name": "learn\r\n", "code": "x\x07",
             "own": True}
    payload = {"type": "Bad\x1bType", "message": "line one\x1b[31m\nline two", "user": False,
               "frames": [frame] * (MAX_FRAMES + 50)}
    error = WorkerHost._failure(host, "learn", payload)
    assert isinstance(error, MethodError) and error.in_worker and len(error.frames) == MAX_FRAMES
    assert str(error) == "method hostile failed in learn: BadType: line one[31m"
    first = error.frames[0]
    assert first.file.startswith("/x/[2Jevil.py") and len(first.file) == TEXT_LIMITS["file"]
    assert (first.name, first.code, first.line) == ("learn", "x", 3)
    assert all(ord(c) >= 32 for c in error.report(debug=True).replace("\n", ""))
    assert WorkerHost._failure(host, "start", {**payload, "frames": []}).call == "__init__"
    for bad in ({**frame, "line": -1}, {**frame, "own": "yes"}, {**frame, "extra": ""}, {"file": "f"}, "frame"):
        with pytest.raises(ReplyError, match=r"error reply to learn\['frames'\]"):
            WorkerHost._failure(host, "learn", {**payload, "frames": [bad]})


def test_own_frames_are_the_method_package_s_and_the_project_methods_not_the_harness_s_or_libraries(tmp_path):
    import torch

    from baselines.zeroshot import ZeroShot
    from benchmark.hosts.failure import is_own

    assert is_own(str(ROOT / "baselines" / "zeroshot.py"), ZeroShot)
    assert is_own(str(ROOT / "methods" / "knnclip" / "method.py"), ZeroShot)
    assert is_own(str(tmp_path / "helpers.py"), ZeroShot)  # the user's own code elsewhere
    assert not is_own(str(ROOT / "benchmark" / "runner.py"), ZeroShot)
    assert not is_own(str(ROOT / "streams" / "builder.py"), ZeroShot)
    assert not is_own(torch.__file__, ZeroShot)
    assert not is_own(json.__file__, ZeroShot)
    assert not is_own("<frozen runpy>", ZeroShot)


def test_the_line_names_the_call_and_the_step_or_the_initial_evaluation():
    from benchmark.errors import MethodError
    from benchmark.hosts.failure import call_method
    from benchmark.runner import during_step

    class Broken:
        def __init__(self, size):
            raise ValueError(f"size {size} is too small")

    with pytest.raises(MethodError) as raised:
        call_method("broken", "__init__", Broken, Broken, 3)
    assert str(raised.value) == "method broken failed in __init__: ValueError: size 3 is too small"
    assert [frame.name for frame in raised.value.frames if frame.own][-1] == "__init__"
    with pytest.raises(MethodError) as raised, during_step(-1):
        call_method("broken", "predict", Broken, Broken, 0)
    assert str(raised.value) == "method broken failed in predict (initial evaluation): ValueError: size 0 is too small"
    report = raised.value.report(debug=False)
    assert report.splitlines()[0] == f"error: {raised.value}" and "in __init__" in report and "failure.py" not in report
    full = raised.value.report(debug=True)
    assert "Traceback (most recent call last):" in full and "benchmark/hosts/failure.py" in full
    assert full.splitlines()[-1] == "ValueError: size 0 is too small"


WRONG_SHAPE = '''
import numpy as np
from baselines.zeroshot import ZeroShot
from benchmark.method import SegmentationOutput, register_method


@register_method("wrong_shape")
class WrongShape(ZeroShot):
    def predict(self, images, vocab):
        return [SegmentationOutput(np.zeros((3, 3), dtype=np.int64)) for _ in images]
'''


@pytest.mark.parametrize("isolate", ["false", pytest.param("true", marks=pytest.mark.slow)])
def test_a_prediction_of_the_wrong_size_is_one_line_and_a_failed_run(monkeypatch, tmp_path, demo_root, capsys,
                                                                     one_thread, isolate):
    from benchmark.__main__ import main
    from benchmark.method import METHODS

    folder = tmp_path / "plugin"
    (folder / "configs" / "method").mkdir(parents=True)
    (folder / "wrong_shape_method.py").write_text(WRONG_SHAPE)
    (folder / "configs" / "method" / "wrong_shape.yaml").write_text("# Predicts 3x3 maps.\nname: wrong_shape\n")
    monkeypatch.setenv("COVSEG_PATH", str(folder))
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        results = tmp_path / "results"
        code = main(["run", "method=wrong_shape", *TINY, f"data.root={demo_root}", f"results_dir={results}",
                     f"isolate={isolate}"])
    finally:
        METHODS._entries.pop("wrong_shape", None)
        sys.modules.pop("wrong_shape_method", None)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "wrong_shape" in err or "predict" in err
    assert "(3, 3)" in err, err
    [path] = results.glob("demo_4steps/wrong_shape/*/manifest.json")
    assert json.loads(path.read_text())["status"] == "failed"
