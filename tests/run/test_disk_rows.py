"""Disk-backed row stores (benchmark/disk_rows.py) and their checkpoints: streamed to side files and back,
never gathered in memory."""
import tracemalloc

import numpy as np
import pytest

from benchmark.disk_rows import DiskRows
from benchmark.run.checkpoint import load_checkpoint, save_checkpoint


def _rows(count: int, shape=(6, 5), dtype=np.float16, seed=0) -> tuple[DiskRows, np.ndarray]:
    values = np.random.default_rng(seed).standard_normal((count, *shape)).astype(dtype)
    rows = DiskRows(shape, dtype)
    rows.append(values[: count // 2])
    rows.append(values[count // 2:])
    return rows, values


def test_rows_read_back_in_the_order_asked_and_overwrite_in_place():
    rows, values = _rows(10)
    assert np.array_equal(rows.read([7, 0, 7]), values[[7, 0, 7]])
    rows.write(3, values[9])
    rows.append(values[:1])  # an append after a write lands after the last row
    assert len(rows) == 11 and np.array_equal(rows.read([3, 10]), values[[9, 0]])


def test_copy_is_independent_of_the_original():
    rows, values = _rows(8)
    twin = rows.copy()
    twin.write(0, values[1])
    assert np.array_equal(rows.read([0]), values[[0]]) and np.array_equal(twin.read(range(8))[1:], values[1:])


def test_checkpoint_streams_stores_to_side_files_and_restores_copies(tmp_path):
    rows, values = _rows(9)
    labels = DiskRows((4,), np.uint16)
    labels.append(np.arange(36, dtype=np.uint16).reshape(9, 4))
    save_checkpoint(tmp_path, 0, {"store": {"inputs": rows, "targets": labels}, "seen": {"a": 0}})
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-0-0.rows", "checkpoint-0-1.rows"]
    assert (tmp_path / "checkpoint-0-0.rows").stat().st_size == values.nbytes

    rows.write(0, values[5])  # after the checkpoint: the saved copy keeps the old row
    save_checkpoint(tmp_path, 1, {"store": {"inputs": rows, "targets": labels}, "seen": {"a": 0}})
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-1-0.rows", "checkpoint-1-1.rows"]
    state = load_checkpoint(tmp_path)["method"]
    restored = state["store"]["inputs"]
    assert restored.dtype == np.float16 and restored.row_shape == (6, 5) and len(restored) == 9
    assert np.array_equal(restored.read(range(9)), np.concatenate([values[5:6], values[1:]]))
    assert np.array_equal(state["store"]["targets"].read(range(9)), labels.read(range(9)))
    restored.write(1, values[0])  # the restored store is its own copy, not the side file
    assert (tmp_path / "checkpoint-1-0.rows").read_bytes()[values[0].nbytes:2 * values[0].nbytes] == values[1].tobytes()


def test_a_truncated_side_file_is_refused(tmp_path):
    rows, _ = _rows(4)
    save_checkpoint(tmp_path, 0, {"inputs": rows})
    side = tmp_path / "checkpoint-0-0.rows"
    side.write_bytes(side.read_bytes()[:-2])
    with pytest.raises(Exception, match="cannot read checkpoint .*checkpoint-0-0.rows holds"):
        load_checkpoint(tmp_path)


def test_saving_and_loading_a_store_does_not_hold_it_in_memory(tmp_path):
    """The checkpoint of a 64 MB store allocates a copy chunk or two (4 MB), not the store (numpy and bytes objects
    are traced by tracemalloc)."""
    rows = DiskRows((1024,), np.float32)
    block = np.ones((1024, 1024), dtype=np.float32)
    for _ in range(16):
        rows.append(block)
    tracemalloc.start()
    try:
        save_checkpoint(tmp_path, 0, {"inputs": rows})
        _, saved_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        restored = load_checkpoint(tmp_path)["method"]["inputs"]
        _, loaded_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(restored) == len(rows) and rows.nbytes == 64 * 2**20
    assert saved_peak < rows.nbytes / 4 and loaded_peak < rows.nbytes / 4, (saved_peak, loaded_peak)
