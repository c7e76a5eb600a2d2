"""isolate=true against a hostile worker: the parent follows no path, name or link the worker chooses."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

CHEATS = Path(__file__).resolve().parents[1] / "cheats"
TINY = ("stream=demo_4steps", "eval.max_images=4", "stream.max_train_images_per_step=2", "eval.initial=false",
        "stream.num_steps=2")


@pytest.fixture
def hostile(monkeypatch, tmp_path):
    """hostile(plan) -> a copy of tests/cheats/paths on COVSEG_PATH, told what to plant."""
    def use(plan: dict) -> None:
        folder = tmp_path / "paths"
        shutil.copytree(CHEATS / "paths", folder)
        (folder / "plan.json").write_text(json.dumps(plan))
        monkeypatch.setenv("COVSEG_PATH", str(folder))

    return use


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


@pytest.mark.parametrize("plan", ["link", "absolute"])
def test_a_state_file_named_outside_the_scratch_folder_is_refused_and_left_alone(run_demo, hostile, tmp_path, plan):
    from benchmark.errors import UserError

    victim = tmp_path / "labels.png"  # validation labels, another run's summary.json: any file not the worker's
    victim.write_bytes(b"the labels")
    before = victim.read_bytes()
    hostile({plan: str(victim)})
    with pytest.raises(UserError) as raised:
        run_demo("method=cheat_paths", "isolate=true", *TINY)
    assert "state file" in str(raised.value) and "\n" not in str(raised.value)
    assert victim.read_bytes() == before  # neither read into the checkpoint nor deleted
    [run_dir] = (tmp_path / "results" / "demo_4steps" / "cheat_paths").iterdir()
    assert manifest(run_dir)["status"] == "failed"
    assert not list(run_dir.glob("checkpoint*"))


class Rows:
    """A byte store as the checkpoint gives it back."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def copy_to(self, handle) -> None:
        handle.write(self.data)


def host_with_scratch(monkeypatch, replies: dict):
    from benchmark.hosts.worker.host import WorkerHost
    from benchmark.hosts.worker.scratch import Scratch

    host = WorkerHost(None, None, Scratch(), "hostile", False)
    monkeypatch.setattr(host, "request", lambda op, *args, **kwargs: replies.get(op))
    return host


def test_the_parent_writes_no_state_file_through_a_link_the_worker_planted(monkeypatch, tmp_path):
    from benchmark.hosts.worker.scratch import ScratchError

    victim = tmp_path / "summary.json"
    victim.write_text('{"honest": 27.34}')
    host = host_with_scratch(monkeypatch, {})
    try:
        os.symlink(victim, host.scratch.path / "state-0.rows")
        host.load_state_dict({"isolated": b"", "files": {"state-0.rows": Rows(b"99.0")}})
        assert victim.read_text() == '{"honest": 27.34}'
        assert (host.scratch.path / "state-0.rows").read_bytes() == b"99.0"  # a new file in the link's place
        with pytest.raises(ScratchError, match="not a plain name"):
            host.load_state_dict({"isolated": b"", "files": {str(victim): Rows(b"99.0")}})
        assert victim.read_text() == '{"honest": 27.34}'
    finally:
        host.scratch.remove()


@pytest.mark.parametrize("name", ["../summary.json", "/etc/passwd", "state-0.rows/../x", "", 7, "state-0.py"])
def test_state_file_names_are_plain_names_of_the_scratch_folder(monkeypatch, name):
    from benchmark.errors import UserError

    host = host_with_scratch(monkeypatch, {"state_dict": {"pickle": b"", "files": [name]}})
    try:
        with pytest.raises(UserError, match="not a plain name|expected a list of strings"):
            host.state_dict()
    finally:
        host.scratch.remove()


def test_a_renamed_scratch_folder_redirects_nothing(monkeypatch, tmp_path):
    """The worker moves its scratch folder away and puts a link to elsewhere in its place: the parent still
    reads the folder it made."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "state-0.rows").write_bytes(b"labels")
    host = host_with_scratch(monkeypatch, {"state_dict": {"pickle": b"", "files": ["state-0.rows"]}})
    moved = tmp_path / "moved"
    try:
        (host.scratch.path / "state-0.rows").write_bytes(b"state")
        os.rename(host.scratch.path, moved)
        os.symlink(elsewhere, host.scratch.path)
        rows = host.state_dict()["files"]["state-0.rows"]
        assert rows.read(np.arange(len(rows))).tobytes() == b"state"
        host.scratch.remove()
        assert (elsewhere / "state-0.rows").read_bytes() == b"labels"  # the link's target untouched
    finally:
        if os.path.islink(host.scratch.path):
            os.unlink(host.scratch.path)
