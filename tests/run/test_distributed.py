"""torchrun data parallelism: sharding without padding, exact all-reduce and ordered gather, and two gloo
processes on the demo stream reproducing the single-process run bit for bit."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from benchmark import distributed
from benchmark.config import load_config
from benchmark.evaluation.per_image import KEYS as PER_IMAGE_KEYS
from benchmark.runner import run_stream

QUICK = ("stream.num_steps=2", "eval.max_images=16", "stream.max_train_images_per_step=20", "quiet=true")
METHODS = ("knnclip", "zeroshot")
REPO_ROOT = Path(__file__).resolve().parents[2]


def test_shard_matches_detectron2_inference_sampler_split():
    # InferenceSampler: 10 images on 3 ranks -> sizes 4, 3, 3, contiguous
    assert [distributed.shard(range(10), place=(r, 3)) for r in range(3)] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    for total in range(0, 13):
        for world in range(1, 6):
            parts = [distributed.shard(range(total), place=(r, world)) for r in range(world)]
            assert sum(parts, []) == list(range(total))  # every image exactly once, no padding
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_padded_shard_matches_torch_distributed_sampler():
    from torch.utils.data import DistributedSampler

    for total, world in ((5, 2), (7, 3), (8, 4), (1, 3)):
        for r in range(world):
            reference = list(DistributedSampler(range(total), num_replicas=world, rank=r, shuffle=False))
            assert distributed.shard(range(total), pad=True, place=(r, world)) == reference


def test_single_process_helpers_are_identities():
    assert not distributed.is_distributed() and distributed.is_main() and distributed.world_size() == 1
    assert distributed.shard([3, 1, 2]) == [3, 1, 2]
    confusion = np.arange(6, dtype=np.int64).reshape(2, 3)
    assert distributed.all_reduce_sum(confusion) is confusion
    assert distributed.gather_sorted([(2, "b"), (0, "a")]) == ["a", "b"]
    with pytest.raises(RuntimeError, match="overlap"):
        distributed.gather_sorted([(1, "a"), (1, "b")])
    module = torch.nn.Linear(2, 2)
    assert distributed.wrap_ddp(module) is module


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_torchrun_rank(rank: int, world: int, port: int) -> None:
    """The environment torchrun would set for this process, and its one thread per process."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)  # torchrun's default per process; the references run with the same


def _run_two_processes(worker, *args, timeout: float = 240) -> None:
    """`worker(rank, 2, port, *args)` in two processes; a hang in a collective fails the test instead of
    blocking the suite."""
    context = mp.spawn(worker, args=(2, _free_port(), *args), nprocs=2, join=False)
    deadline = time.monotonic() + timeout
    while not context.join(timeout=max(0.0, deadline - time.monotonic())):
        if time.monotonic() >= deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the two gloo processes did not finish within {timeout:.0f} s")


def _worker(rank: int, world: int, port: int, demo_root: str, results: str, out: str) -> None:
    """One torchrun-like process: the environment torchrun would set, then the runs of every method."""
    _as_torchrun_rank(rank, world, port)
    report = {}
    for method in METHODS:
        cfg = load_config([f"method={method}", f"data.root={demo_root}", f"results_dir={results}", *QUICK])
        report[method] = str(run_stream(cfg))
    # the helpers across the two ranks: exact int64 sum, ordered gather of strided keys
    big = np.full(3, 2**40 + rank, dtype=np.int64)
    report["sum"] = distributed.all_reduce_sum(big).tolist()
    report["gathered"] = distributed.gather_sorted([(k, f"r{rank}k{k}") for k in range(rank, 5, world)])
    report["broadcast"] = distributed.broadcast_object(f"from {rank}")
    # DDP: each rank's gradient of (w . x_rank) is x_rank; after backward every rank holds their mean
    model = distributed.wrap_ddp(torch.nn.Linear(2, 1, bias=False))
    model(torch.tensor([[1.0, 2.0]]) * (rank + 1)).sum().backward()
    report["grad"] = next(model.parameters()).grad.tolist()
    Path(out, f"rank{rank}.json").write_text(json.dumps(report))


def _stats(run_dir: Path) -> list[np.ndarray]:
    return [np.load(p)["confusion"] for p in sorted((run_dir / "stats").glob("step_*.npz"))]


def _strip(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in ("run_id", "seconds")}


@pytest.mark.slow  # ~15 s: two gloo processes and a single-process run; CI runs it with -m slow
def test_two_gloo_processes_equal_single_process_bitwise(demo_root, tmp_path, one_thread):
    out = tmp_path / "reports"
    out.mkdir()
    _run_two_processes(_worker, str(demo_root), str(tmp_path / "two"), str(out))
    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert reports[0]["sum"] == reports[1]["sum"] == [2 * 2**40 + 1] * 3
    assert reports[0]["gathered"] == reports[1]["gathered"] == ["r0k0", "r1k1", "r0k2", "r1k3", "r0k4"]
    assert reports[0]["broadcast"] == reports[1]["broadcast"] == "from 0"
    assert reports[0]["grad"] == reports[1]["grad"] == [[1.5, 3.0]]

    for method in METHODS:
        two = Path(reports[0][method])
        assert reports[1][method] == str(two)  # every rank knows the run folder; rank 0 wrote it
        single = run_stream(load_config([f"method={method}", f"data.root={demo_root}",
                                         f"results_dir={tmp_path / 'one'}", *QUICK]))
        confusions_single, confusions_two = _stats(single), _stats(two)
        assert len(confusions_single) == 2 and confusions_single[0].sum() > 0
        for a, b in zip(confusions_single, confusions_two, strict=True):
            assert a.dtype == b.dtype == np.int64 and np.array_equal(a, b)
        for a, b in zip(sorted((single / "stats").glob("step_*.npz")), sorted((two / "stats").glob("step_*.npz"))):
            per_image_single, per_image_two = np.load(a), np.load(b)  # gathered in single-process order
            assert all(np.array_equal(per_image_single[k], per_image_two[k]) for k in PER_IMAGE_KEYS)
        summaries = [json.loads((d / "summary.json").read_text()) for d in (single, two)]
        assert _strip(summaries[0]) == _strip(summaries[1])
        manifest = json.loads((two / "manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["world_size"] == 2
    assert len(list((tmp_path / "two").glob("*/*/*"))) == len(METHODS)  # one folder per run, none per rank


@pytest.mark.slow
def test_torchrun_cli_two_processes(demo_root, tmp_path):
    """The user's command: `torchrun --nproc_per_node 2 -m benchmark run ...` (slow: starts three interpreters)."""
    torchrun = Path(sys.executable).with_name("torchrun")
    args = ["-m", "benchmark", "run", "method=knnclip", f"data.root={demo_root}", *QUICK, "run_id=r"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([str(torchrun), "--nproc_per_node", "2", *args, f"results_dir={tmp_path / 'two'}"],
                   cwd=REPO_ROOT, env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, *args, f"results_dir={tmp_path / 'one'}"], cwd=REPO_ROOT, env=env, check=True,
                   capture_output=True)
    for a, b in zip(_stats(tmp_path / "one/demo_4steps/knnclip/r"), _stats(tmp_path / "two/demo_4steps/knnclip/r"),
                    strict=True):
        assert np.array_equal(a, b)


def _finetune_worker(rank: int, world: int, port: int, demo_root: str, results: str) -> None:
    _as_torchrun_rank(rank, world, port)
    run_stream(load_config(["method=finetune", "method.epochs=2", f"data.root={demo_root}", f"results_dir={results}",
                            "run_id=ddp", *QUICK]))


@pytest.mark.slow  # two processes training; the bitwise two-process evaluation stays in the default suite
def test_finetune_completes_with_ddp_on_two_gloo_processes(demo_root, tmp_path):
    _run_two_processes(_finetune_worker, str(demo_root), str(tmp_path))
    run_dir = tmp_path / "demo_4steps" / "finetune" / "ddp"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
    assert summary["num_steps"] == 2 and all(v is not None for v in summary["matrices"]["miou"][1])
    assert summary["trainable_parameters"][-1] > 0


def _training_set_worker(rank: int, world: int, port: int, demo_root: str, out: str) -> None:
    """A rank builds fine-tuning's training set of 12 demo images; it saves the result and how many images its
    frozen model ran on."""
    _as_torchrun_rank(rank, world, port)
    distributed.init_from_env("cpu")
    import baselines.trainable

    baselines.trainable.GATHER_CHUNK = 5  # several gathers for 12 images
    inputs, targets, computed = _fine_tuning_training_set(demo_root)
    torch.save({"inputs": inputs, "targets": targets, "computed": computed}, Path(out, f"rank{rank}.pt"))


def _fine_tuning_training_set(demo_root: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    from benchmark.config import method_config
    from benchmark.method import METHODS
    from benchmark.models import build_segmenter
    from benchmark.plugins import load_methods
    from streams.builder import open_dataset

    load_methods()
    cfg = load_config(["method=finetune", f"data.root={demo_root}", "model.cache_dir=off"])
    segmenter = build_segmenter(cfg.model, seed=0)
    computed = []
    dense_features = segmenter.dense_features
    segmenter.dense_features = lambda images: computed.extend(images) or dense_features(images)
    train = open_dataset("demo", "train", Path(demo_root))
    method = METHODS.get("finetune")(method_config(cfg), segmenter, len(train.vocabulary), seed=0)
    data = method.training_set([train.load(i) for i in range(12)])
    inputs, targets = data.batch(range(len(data)))  # read back from the training set's store on disk
    return inputs, targets, len(computed)


@pytest.mark.slow  # two processes training three baselines: half a minute; CI runs -m slow
def test_learning_baselines_split_their_frozen_features_over_ranks(demo_root, tmp_path, one_thread):
    _run_two_processes(_training_set_worker, str(demo_root), str(tmp_path), timeout=180)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    inputs, targets, computed = _fine_tuning_training_set(str(demo_root))
    assert computed == len(inputs) == 12 and sum(r["computed"] for r in ranks) == 12
    assert all(0 < r["computed"] < 12 for r in ranks)  # each rank ran the backbone on its share only
    for r in ranks:  # ... and holds the whole training set, in single-process order, bit for bit
        assert torch.equal(r["inputs"], inputs) and torch.equal(r["targets"], targets)
