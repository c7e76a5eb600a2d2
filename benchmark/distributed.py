"""torch.distributed helpers: one process per device, started by torchrun.

`torchrun --nproc_per_node N -m benchmark run ...` starts N copies of the run; each reads its place from the
environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and `init_from_env` joins
the process group (backend nccl on GPUs, gloo on CPU). Without those variables every helper is the identity
of a single process, so the same code path serves both.

How the harness shards (results equal the single-process run bit for bit, at equal threads per process):
- evaluation: each rank predicts `shard(validation indices)` (contiguous, no padding: no image counted twice,
  as detectron2's InferenceSampler); the int64 confusion matrix is summed with `all_reduce_sum` (exact);
- training-free learning (kNN-CLIP): each rank embeds `step.sharded_samples()`; `gather_sorted` hands every rank
  all (position, item) pairs in step order, so every rank builds the database a single process would build;
- learning baselines' frozen inputs: each rank runs the frozen model on the training images it `owns` (a
  stable hash of the image id, so an image keeps its rank, and its per-image cache entry, across steps);
  `gather_sorted` assembles the step's training set in single-process order on every rank;
- only rank 0 writes results (`is_main`).

A learning method (fine-tuning, replay, joint) uses DistributedDataParallel:

    model = distributed.wrap_ddp(head)                     # identity in a single process
    for epoch in range(epochs):
        for position, sample in step.sharded_samples(pad=True, seed=seed + epoch):
            ...  forward, loss, backward (DDP averages the gradients), optimizer step
    total = distributed.all_reduce_sum(np.array([loss_sum, count]))   # logging: sum over ranks

`pad=True` gives every rank the same number of samples (DDP hangs if ranks run different numbers of
backward passes); never use it for evaluation. Call `barrier()` before reading a file another rank writes.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import random
import zlib
from typing import Any, Iterator, Sequence, TypeVar

import numpy as np
import torch
import torch.distributed as dist

T = TypeVar("T")


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0: the only process that writes results and prints."""
    return rank() == 0


def init_from_env(device: str) -> str:
    """Join the process group torchrun describes in the environment (no-op without WORLD_SIZE > 1).

    Returns the device this process should use: `cuda` becomes `cuda:LOCAL_RANK` (backend nccl); any other
    device uses backend gloo. The group lives until the process exits, so one process can run several runs
    (re-initialising a group on the same rendezvous port hangs).
    """
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return device
    on_gpu = device.startswith("cuda")
    if on_gpu:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if on_gpu else "gloo")
        atexit.register(_destroy_group)
    return device


def _destroy_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. fills an on-disk cache); the others run it after, reading the cache."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def shard(items: Sequence[T], pad: bool = False, seed: int | None = None,
          place: tuple[int, int] | None = None) -> list[T]:
    """This rank's part of `items`.

    pad=False (evaluation, database building): a contiguous slice; slices of consecutive ranks follow each
    other and cover `items` exactly once, sizes differ by at most one (detectron2's InferenceSampler).
    pad=True (training with DDP): `items`, shuffled with `seed` when given, padded by repeating from its start
    to a multiple of the world size, then strided, so every rank gets the same count
    (torch's DistributedSampler). `place` = (rank, world size), default this process's.
    """
    r, w = place if place is not None else (rank(), world_size())
    items = list(items)
    if not pad:
        size, extra = divmod(len(items), w)
        start = r * size + min(r, extra)
        return items[start:start + size + (r < extra)]
    if seed is not None:
        random.Random(seed).shuffle(items)
    if items:
        total = -(-len(items) // w) * w
        items = (items * (total // len(items) + 1))[:total]
    return items[r::w]


def owner(key: str) -> int:
    """The rank responsible for `key` (an image id): a stable hash, the same in every process and run."""
    return zlib.crc32(key.encode()) % world_size()


def all_gather_object(obj: T) -> list[T]:
    """Every rank's `obj`, in rank order (pickled; fine for CPU arrays up to some hundred MB)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def gather_sorted(items: list[tuple[int, T]]) -> list[T]:
    """The values of every rank's (key, value) pairs, sorted by key: with keys = positions in the
    single-process order, every rank gets the single-process sequence. Raises if a key occurs twice."""
    merged = sorted((pair for part in all_gather_object(items) for pair in part), key=lambda pair: pair[0])
    keys = [key for key, _ in merged]
    if len(set(keys)) != len(keys):
        raise RuntimeError("gather_sorted: the ranks' shards overlap (a key occurs twice)")
    return [value for _, value in merged]


def broadcast_object(obj: T) -> T:
    """Rank 0's `obj` on every rank."""
    if not is_distributed():
        return obj
    holder = [obj if is_main() else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_reduce_sum(array: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Element-wise sum over ranks (exact for integer arrays such as confusion matrices); same type back."""
    if not is_distributed():
        return array
    is_numpy = isinstance(array, np.ndarray)
    tensor = torch.from_numpy(np.ascontiguousarray(array)) if is_numpy else array
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    reduced = tensor.to(device).clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced.cpu().numpy() if is_numpy else reduced.to(array.device)


def wrap_ddp(module: torch.nn.Module) -> torch.nn.Module:
    """`module` in DistributedDataParallel when distributed (gradients averaged over ranks), else itself.
    Its parameters must already be on this rank's device."""
    if not is_distributed():
        return module
    from torch.nn.parallel import DistributedDataParallel

    device = next(module.parameters()).device
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
