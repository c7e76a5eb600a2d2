"""benchmark.confine, each restriction on its own in a fresh process: the first stage loads nothing but the
standard library (so it is single-threaded when it confines itself), the seccomp filter and the network
namespace refuse IP sockets, and root drops to a user that keeps at most root's right to read."""
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRY_SOCKETS = """
import socket
reached = []
for family, kind in ((socket.AF_INET, socket.SOCK_DGRAM), (socket.AF_INET, socket.SOCK_STREAM),
                     (socket.AF_INET6, socket.SOCK_DGRAM)):
    try:
        with socket.socket(family, kind) as s:
            s.sendto(b"x", ("127.0.0.1" if family == socket.AF_INET else "::1", 9)) if kind == socket.SOCK_DGRAM \\
                else s.connect(("127.0.0.1", 9))
        reached.append(str(family) + " " + str(kind))
    except ConnectionRefusedError:
        reached.append(str(family) + " " + str(kind))
    except OSError:
        pass
a, b = socket.socketpair()  # unix sockets stay open
print("reached:", reached)
"""


def python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_first_stage_loads_only_the_standard_library_and_runs_one_thread():
    out = python("import os, sys\nimport benchmark.confine.__main__\n"
                 "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'torch', 'omegaconf')),"
                 " len(os.listdir('/proc/self/task')))")
    assert out.split() == ["[]", "1"]


def test_the_seccomp_filter_refuses_ip_sockets_and_keeps_unix_ones():
    from benchmark.confine.network import ARCHITECTURES

    if platform.machine() not in ARCHITECTURES:
        pytest.skip(f"no seccomp filter for {platform.machine()}")
    out = python("from benchmark.confine.landlock import no_new_privileges\n"
                 "from benchmark.confine.network import filter_sockets\n"
                 "no_new_privileges()\nassert filter_sockets()\n" + TRY_SOCKETS)
    assert "reached: []" in out


def test_a_network_namespace_of_its_own_reaches_no_ip_address():
    out = python("from benchmark.confine.network import unshare_network\n"
                 "print('unshared' if unshare_network() else 'refused')\n" + TRY_SOCKETS)
    if out.startswith("refused"):
        pytest.skip("this kernel refuses a network namespace to this user (the seccomp filter stands in)")
    assert "reached: []" in out


@pytest.mark.parametrize("read_override", [False, True])
def test_root_drops_to_a_user_that_writes_no_root_file_and_reads_one_only_with_the_read_override(read_override):
    if os.geteuid() != 0:
        pytest.skip("dropping root needs root")
    with tempfile.TemporaryDirectory() as folder:
        secret = Path(folder) / "secret"
        secret.write_text("the labels")
        secret.chmod(0o644)
        os.chmod(folder, 0o700)  # closed to others, as /root is
        out = python(f"import os\nfrom benchmark.confine.user import drop_privileges\n"
                     f"drop_privileges(65534, 65534, {read_override})\n"
                     f"print(os.getuid(), os.getgid(), os.getgroups())\n"
                     f"try:\n    open({str(secret)!r}, 'a')\nexcept OSError:\n    print('no write')\n"
                     f"try:\n    print(open({str(secret)!r}).read())\nexcept OSError:\n    print('no read')\n")
    assert out.splitlines() == ["65534 65534 []", "no write", "the labels" if read_override else "no read"]


def test_a_root_run_keeps_the_read_override_only_where_the_user_could_not_read_what_it_needs():
    from benchmark.hosts.worker.sandbox import unreadable, worker_user

    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        base = Path(folder)
        base.chmod(0o755)
        (base / "open" / "site-packages").mkdir(parents=True)
        (base / "closed" / "python").mkdir(parents=True)
        (base / "closed").chmod(0o700)
        opened, closed = str(base / "open" / "site-packages"), str(base / "closed" / "python")
        assert unreadable([opened], 12345, 12345) is None and unreadable([opened, closed], 12345, 12345) == closed
        plan = {"read": [opened], "write": ["/dev/null", "/dev/nvidia-caps"]}  # devices do not count
        assert worker_user((12345, 12345), plan) == {"uid": 12345, "gid": 12345, "read_override": False}
        assert worker_user((12345, 12345), {**plan, "read": [closed]})["read_override"] is True
        assert worker_user(None, plan) is None
