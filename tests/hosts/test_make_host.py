"""make_host: the one place that chooses where a method lives. isolate=false gives the method in this process,
isolate=true a worker process; both answer every MethodHost call alike."""
import inspect

import numpy as np
import pytest

from benchmark.hosts import MethodHost, make_host
from benchmark.hosts.in_process import InProcessHost
from benchmark.hosts.worker.host import WorkerHost

NUM_CLASSES = 40  # the demo dataset's


def calls(cls) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}


def test_both_hosts_implement_every_call_of_the_protocol():
    protocol = calls(MethodHost)
    assert {"learn", "predict", "state_dict", "load_state_dict", "counters", "close", "execution"} <= protocol
    assert protocol <= calls(InProcessHost) and protocol <= calls(WorkerHost)


@pytest.fixture
def config(demo_root):
    from benchmark.config import load_config

    def make(*overrides: str):
        return load_config([f"data.root={demo_root}", "quiet=true", "model.cache_dir=off", "method=knnclip",
                            *overrides])

    return make


@pytest.fixture
def images(demo_root):
    from benchmark.data.types import ImageInput
    from streams.builder import open_dataset

    val = open_dataset("demo", "val", demo_root)
    return [ImageInput.of(val.load(i), panoptic=False) for i in range(2)], val.vocabulary


def test_in_process_host_holds_the_configured_method(config):
    from methods.knnclip.method import KnnClip

    host = make_host(config("method.k=3"), NUM_CLASSES)
    assert isinstance(host, InProcessHost) and isinstance(host.method, KnnClip) and host.method.config.k == 3
    assert host.execution() == {"isolate": False, "sandbox": False}
    source, plugins = host.provenance()
    assert source is None and isinstance(plugins, list)  # the writer records the registered class's files
    host.close()


def test_worker_host_answers_as_the_in_process_host(config, images):
    from benchmark.runner import seed_everything

    inputs, vocabulary = images
    seed_everything(0)
    local = make_host(config(), NUM_CLASSES)
    seed_everything(0)
    cfg = config("isolate=true")
    worker = make_host(cfg, NUM_CLASSES)
    try:
        assert isinstance(worker, WorkerHost) and worker.execution() == {"isolate": True, "sandbox": False}
        assert cfg.method.name == "knnclip" and cfg.method.k == local.method.config.k  # the worker's checked keys
        for ours, theirs in zip(local.predict(inputs, vocabulary), worker.predict(inputs, vocabulary)):
            assert np.array_equal(ours.sem_seg, theirs.sem_seg)
        assert worker.counters() == local.counters() and worker.counters()["backbone_images"] == 2
        assert worker.memory_bytes() == local.memory_bytes()
        assert worker.trainable_parameters() == local.trainable_parameters()
        source, _ = worker.provenance()
        assert source["module"] == type(local.method).__module__ and source["registered"] is True
    finally:
        worker.close()
    assert worker.process.poll() is not None and not worker.scratch.path.exists()


def test_sandbox_needs_a_worker(config):
    from benchmark.errors import UserError

    with pytest.raises(UserError, match="set isolate=true as well"):
        config("sandbox=true")
