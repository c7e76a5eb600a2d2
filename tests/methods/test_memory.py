"""memory_bytes is what a method holds across steps, checked per method against the objects actually held:
the tensors and arrays reachable from the method (our own methods), the bytes avalanche's plugins serialise to
(method=avalanche), the entries of the faiss database (knnclip)."""
import io

import pytest
import torch

from benchmark.memory import reachable_bytes
from project_methods import build, project_methods, step_data

AVALANCHE = [("Replay", {"mem_size": 3}), ("EWC", {"ewc_lambda": 1.0}), ("LwF", {"alpha": 1.0, "temperature": 2.0}),
             ("GEM", {"patterns_per_exp": 2})]
PARAMS = {"finetune": {"epochs": 1}, "joint": {"epochs": 1}, "replay": {"epochs": 1, "mem_size": 3},
          "ewc": {"epochs": 1}, "lwf": {"epochs": 1}, "zeroshot": {}, "knnclip": {}}
CASES = [(name, PARAMS[name]) for name in project_methods() if name != "avalanche"] + [
    ("avalanche", {"epochs": 1, "strategy": strategy, "strategy_args": args}) for strategy, args in AVALANCHE]


def learn_two_steps(demo_parts, name, params):
    segmenter, train, _ = demo_parts
    method = build(name, segmenter, train.vocabulary, **params)
    method.learn(step_data(train, 0, list(range(20)), list(range(20)), count=4))
    first = method.memory_bytes()
    method.learn(step_data(train, 1, list(range(20, 40)), list(range(40)), count=4))
    return method, first


def test_every_project_method_is_covered():
    assert {name for name, _ in CASES} == set(project_methods()) >= {"knnclip", "zeroshot", "avalanche"}


@pytest.mark.parametrize("name, params", CASES, ids=[c[0] + ("-" + c[1]["strategy"] if "strategy" in c[1] else "")
                                                     for c in CASES])
def test_memory_bytes_counts_what_the_method_holds(demo_parts, name, params):
    if params.get("strategy") == "GEM":  # the `test` extra brings quadprog; a bare `pip install pytest` may not
        pytest.importorskip("quadprog", reason="GEM's solver quadprog is not installed (pip install '.[test]')")
    method, after_first_step = learn_two_steps(demo_parts, name, params)
    memory = method.memory_bytes()
    segmenter = demo_parts[0]
    if name == "avalanche":
        head = sum(p.numel() * p.element_size() for p in method.head.parameters() if p.requires_grad)
        buffer = io.BytesIO()
        torch.save(method.strategy.plugins, buffer)  # every storage the plugins keep, once, plus pickle framing
        saved = len(buffer.getvalue())
        assert memory - head <= saved <= memory - head + 16_000
        assert memory > head  # the strategy keeps something beyond the head (buffers, importances, teacher)
        if params["strategy"] in ("Replay", "EWC", "GEM"):  # its memory grows with the steps
            assert memory > after_first_step
    elif name == "knnclip":
        database = method.database
        entries = database.index.ntotal + database.pending.ntotal
        exact = entries * database.dim * 4 + entries * database.labels.itemsize  # Flat: float32 vectors + labels
        assert entries > 0 and exact <= memory <= exact + 2_000  # + the two indexes' headers
        assert memory > after_first_step
    else:
        held = reachable_bytes([method], exclude=[segmenter])
        if name == "joint":  # its copy of the training data lives in a store on disk
            held += method.store.nbytes
        assert held == pytest.approx(memory, rel=0.001, abs=64), (held, memory)
        if name in ("joint", "replay"):
            assert memory > method.trainable_parameters() * 4  # their own copies of the images


def test_reachable_bytes_counts_each_storage_once_and_skips_excluded_objects():
    tensor = torch.zeros(10, 10)  # 400 bytes
    module = torch.nn.Linear(4, 4)  # 80 bytes
    graph = {"a": tensor, "view": tensor[2:], "again": [tensor], "module": module, "other": torch.zeros(3, dtype=torch.uint8)}
    assert reachable_bytes([graph]) == 400 + 80 + 3
    assert reachable_bytes([graph], exclude=[module]) == 400 + 3
