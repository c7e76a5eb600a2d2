"""sandbox=true against a worker that leaves by the network or keeps root's rights: a network namespace of its
own (or a seccomp filter) refuses it UDP and TCP alike, and a worker started by root runs as an unprivileged
user that can write no root-owned file and read no disk, even where Landlock would let it."""
import json
import os
import platform
import shutil
import socket
import stat
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHEATS = ROOT / "tests" / "cheats"
TINY = ("stream=demo_4steps", "eval.max_images=4", "stream.max_train_images_per_step=2", "eval.initial=false",
        "stream.num_steps=2")


@pytest.fixture
def escape(monkeypatch, tmp_path):
    """escape(plan source) -> tests/cheats/reach copied onto COVSEG_PATH with that plan.py."""
    from benchmark.confine.landlock import landlock_abi

    if not landlock_abi():
        pytest.skip("Linux Landlock is not available here")

    def use(plan: str) -> None:
        folder = tmp_path / "reach"
        shutil.copytree(CHEATS / "reach", folder)
        (folder / "plan.py").write_text(plan)
        monkeypatch.setenv("COVSEG_PATH", str(folder))

    return use


def execution(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())["execution"]


@pytest.mark.slow  # ~10 s: a sandboxed worker
def test_a_sandboxed_worker_reaches_no_socket_by_udp_or_tcp(run_demo, escape):
    from benchmark.confine.network import ARCHITECTURES

    if platform.machine() not in ARCHITECTURES:
        pytest.skip(f"no seccomp fallback on {platform.machine()}: only a network namespace would block UDP")
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        udp.bind(("127.0.0.1", 0))
        escape(f"TCP_PORT = {tcp.getsockname()[1]}\nUDP_PORT = {udp.getsockname()[1]}\n")
        run_dir, _ = run_demo("method=cheat_network", "isolate=true", "sandbox=true", *TINY)
        tcp.setblocking(False)
        udp.setblocking(False)
        with pytest.raises(BlockingIOError):
            tcp.accept()
        with pytest.raises(BlockingIOError):
            udp.recv(64)
    assert execution(run_dir)["network"] in ("netns", "seccomp")


def a_disk() -> str | None:
    """A block device of this machine (a disk rather than a loop device where there is one)."""
    found = sorted(p for p in Path("/dev").iterdir() if p.is_block_device())
    disks = [p for p in found if not p.name.startswith(("loop", "zram", "ram"))]
    return str((disks or found)[0]) if found else None


@pytest.mark.slow  # ~10 s: a sandboxed worker
def test_a_worker_started_by_root_drops_to_a_user_that_writes_no_root_file_and_reads_no_disk(
        run_demo, escape, monkeypatch, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the worker drops root only where the harness runs as root, which it does not here")
    weights = tmp_path / "torch"  # the model weights' cache: a folder the sandbox lets the worker write
    weights.mkdir()
    root_file = weights / "weights.pt"
    root_file.write_text("honest")
    root_file.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
    monkeypatch.setenv("TORCH_HOME", str(weights))
    escape(f"ROOT_FILE = {str(root_file)!r}\nDEVICE = {a_disk()!r}\n")
    run_dir, _ = run_demo("method=cheat_root", "isolate=true", "sandbox=true", *TINY)
    assert root_file.read_text() == "honest"
    assert execution(run_dir)["uid"] != 0
