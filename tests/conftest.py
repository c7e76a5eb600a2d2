"""Fixtures shared by the test folders, which mirror the packages they test (tests/run/, tests/leaderboard/, ...).
The modules beside this file that are not tests (run_folders, project_methods, full_disk, cited_splits,
fcclip_reference) are helpers those tests import by their bare names: this folder is on sys.path."""
import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

HELPERS = str(Path(__file__).resolve().parent)
if HELPERS not in sys.path:
    sys.path.insert(0, HELPERS)

# the default disk feature cache ($XDG_CACHE_HOME/covseg-bench) of every test run is a fresh folder: tests never
# read another session's (or the user's) cached features
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="covseg-test-cache-")


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    root = Path(os.environ.get("COVSEG_FIXTURES", Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"))
    if not root.is_dir():
        pytest.skip(f"shared fixtures not found at {root} (set COVSEG_FIXTURES)")
    return root


@pytest.fixture(scope="session")
def demo_root() -> Path:
    """The data root holding the generated demo dataset, generated once per test session where runs without
    `data.root` look for it (the session's fresh $XDG_CACHE_HOME): subprocesses reuse it too."""
    from benchmark.data.demo import demo_cache_root, ensure_demo_dataset

    root = demo_cache_root()
    ensure_demo_dataset(root, seed=0, secret=0)  # the public draw: the one the tests' golden numbers were measured on
    return root


@pytest.fixture(scope="module")
def demo_parts(demo_root):
    """Segmenter, vocabulary and a few validation samples of the demo dataset."""
    from benchmark.config import load_config
    from benchmark.data.types import ImageInput
    from benchmark.models import build_segmenter
    from streams.builder import open_dataset

    cfg = load_config([f"data.root={demo_root}"])
    segmenter = build_segmenter(cfg.model, seed=0)
    train = open_dataset("demo", "train", demo_root, 0, "raise")
    val = open_dataset("demo", "val", demo_root, 0, "raise")
    return segmenter, train, [ImageInput.of(val.load(i), panoptic=False) for i in range(4)]


@pytest.fixture
def run_demo(demo_root, tmp_path):
    """run_demo(*overrides) -> (run_dir, summary dict): one in-process run on the demo data."""
    import json

    from benchmark.config import load_config
    from benchmark.runner import run_stream

    def run(*overrides: str):
        cfg = load_config([f"data.root={demo_root}", f"results_dir={tmp_path / 'results'}", "quiet=true", *overrides])
        run_dir = run_stream(cfg)
        return run_dir, json.loads((run_dir / "summary.json").read_text())

    return run


@pytest.fixture
def one_thread():
    """One torch thread for the test's duration: as torchrun gives each process (the references of the
    distributed tests), and it keeps a busy 2-core machine from oversubscribing OpenMP."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
