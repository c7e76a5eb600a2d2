"""The bad-input catalogue not covered elsewhere (see README "Troubleshooting" for the full list and where
each case is tested): each gets one clear line, a non-zero exit and nothing half-written."""
import json
import subprocess
import sys

import numpy as np
import pytest

from benchmark.config import load_config
from benchmark.data.readers import CocoPanopticFolder
from benchmark.data.types import SegmentationDataset, Vocabulary, ClassInfo
from benchmark.errors import DataError, UserError
from streams.builder import build_stream


def cli(*args: str):
    return subprocess.run([sys.executable, "-m", "benchmark", *args], capture_output=True, text=True, timeout=120)


def test_method_parameter_out_of_range_one_line(demo_root, tmp_path):
    result = cli("run", "method=knnclip", "method.k=0", f"data.root={demo_root}", f"results_dir={tmp_path}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "error: method.k=0 must be positive"
    assert not any(tmp_path.iterdir())  # nothing written: the method is built before the run folder


def test_debug_true_shows_the_traceback():
    result = cli("run", "method=knnclp", "debug=true")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_partial_data_root_names_missing_folder(tmp_path):
    (tmp_path / "ADE20K_2021_17_01" / "images_detectron2" / "training").mkdir(parents=True)
    result = cli("run", "stream=ade847_10steps", f"data.root={tmp_path}", f"results_dir={tmp_path / 'r'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "annotations_detectron2" in result.stderr or "ADE20K_2021_17_01" in result.stderr
    assert not (tmp_path / "r").exists()


class _TinyDataset(SegmentationDataset):
    """Four images whose classes are given directly (for stream-building checks)."""

    def __init__(self, classes_per_image):
        self.name, self.split = "tiny", "train"
        self.vocabulary = Vocabulary("tiny", tuple(ClassInfo(i, f"c{i}", (f"c{i}",)) for i in range(4)))
        self._classes = classes_per_image

    def __len__(self):
        return len(self._classes)

    def image_id(self, index):
        return f"img{index}"

    def classes_present(self, index):
        return np.array(self._classes[index])


def _stream_cfg(**overrides):
    cfg = load_config(["stream=demo_4steps"]).stream
    cfg.name, cfg.num_steps, cfg.order = "tiny", 2, "natural"
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def test_empty_step_is_refused_with_advice():
    dataset = _TinyDataset([[0], [1], [0, 1]])  # classes 2 and 3 (step 1) appear in no image
    with pytest.raises(UserError, match="step 1 has no training image holding its classes .*order_seed"):
        build_stream(_stream_cfg(), dataset)


def test_disjoint_mode_drops_images_with_future_classes():
    dataset = _TinyDataset([[0], [0, 2], [2, 3], [1, 3]])
    overlap = build_stream(_stream_cfg(), dataset)
    disjoint = build_stream(_stream_cfg(mode="disjoint"), dataset)
    assert overlap.train_indices == [[0, 1, 3], [1, 2, 3]]
    assert disjoint.train_indices == [[0], [1, 2, 3]]
    assert overlap.hash != disjoint.hash


@pytest.mark.parametrize("file_name", ["../outside.png", "/etc/passwd"])
def test_annotation_file_names_cannot_escape_the_data_root(tmp_path, file_name):
    (tmp_path / "images").mkdir()
    (tmp_path / "pan").mkdir()
    annotation = {"images": [{"id": 1, "file_name": "a.jpg"}],
                  "annotations": [{"image_id": 1, "file_name": file_name, "segments_info": []}], "categories": []}
    (tmp_path / "pan.json").write_text(json.dumps(annotation))
    vocab = Vocabulary("v", (ClassInfo(0, "c", ("c",)),))
    with pytest.raises(DataError, match="escapes the dataset folder"):
        CocoPanopticFolder("x", "val", tmp_path / "images", tmp_path / "pan.json", tmp_path / "pan", vocab, [1])


@pytest.mark.slow  # ~11 s: two runs over a copied demo; CI runs it with -m slow
def test_corrupt_demo_image_named_and_skip_mode_counts(demo_root, tmp_path):
    """A corrupt validation image stops the run with its path; data.on_error=skip runs and reports it."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(demo_root, root)
    victim = sorted((next(root.glob("covseg_demo_*")) / "images" / "validation").glob("*.jpg"))[0]
    victim.write_bytes(b"not a jpeg")
    base = ["method=zeroshot", f"data.root={root}", "eval.max_images=4", "stream.num_steps=2",
            "stream.max_train_images_per_step=4", "quiet=true"]
    result = cli("run", *base, f"results_dir={tmp_path / 'a'}")
    assert result.returncode == 2 and str(victim) in result.stderr and "Traceback" not in result.stderr
    result = cli("run", *base, "data.on_error=skip", f"results_dir={tmp_path / 'b'}")
    assert result.returncode == 0, result.stderr
    assert "skipped 1 unreadable image" in result.stdout


# ---------------------------------------------------------------- one line and exit 2, never a traceback (issue #22)

def one_line_error(capsys, argv):
    """main(argv)'s exit code must be 2 and its stderr one `error:` line; returns that line."""
    from benchmark.__main__ import main

    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.fixture
def plugin_configs(tmp_path, monkeypatch):
    """A COVSEG_PATH folder whose configs/stream/ receives the test's stream files."""
    folder = tmp_path / "plugin"
    (folder / "configs" / "stream").mkdir(parents=True)
    monkeypatch.setenv("COVSEG_PATH", str(folder))
    return folder / "configs" / "stream"


def test_empty_stream_yaml_names_the_file_and_what_it_leaves_unset(plugin_configs, capsys):
    (plugin_configs / "empty.yaml").write_text("")
    line = one_line_error(capsys, ["run", "method=zeroshot", "stream=empty", "--cfg", "job"])
    assert f"{plugin_configs / 'empty.yaml'} leaves stream.dataset, stream.name unset" in line


def test_unknown_key_in_a_stream_yaml_names_the_file_and_key(plugin_configs, capsys):
    (plugin_configs / "typo.yaml").write_text("name: typo\ndataset: demo\nnum_steps: 4\nordr: random\n")
    line = one_line_error(capsys, ["run", "method=zeroshot", "stream=typo", "--cfg", "job"])
    assert line.startswith(f"error: {plugin_configs / 'typo.yaml'}: unknown config key 'stream.ordr'")
    assert "stream.order" in line  # the suggestion


@pytest.mark.parametrize("override, message", [
    ("stream.num_steps=0", "stream.num_steps must be positive (or null), got 0"),
    ("eval.max_images=0", "eval.max_images must be positive (or null), got 0"),
    ("eval.max_images=-3", "eval.max_images must be positive (or null), got -3"),
    ("results_dir=", "results_dir is empty"),
])
def test_values_that_would_run_wrong_are_refused(capsys, override, message):
    """num_steps: 0 read as "unset"; max_images 0 gave a `complete` run over no image; an empty results_dir
    wrote into the current folder."""
    assert message in one_line_error(capsys, ["run", "method=zeroshot", override, "--cfg", "job"])


def _demo_run(demo_root, tmp_path, *overrides):
    return ["run", "method=zeroshot", f"data.root={demo_root}", f"results_dir={tmp_path / 'results'}", "quiet=true",
            "stream.max_train_images_per_step=4", "eval.max_images=2", *overrides]


@pytest.mark.parametrize("edit, message", [
    (lambda text, frozen: "", "not a frozen stream (JSONDecodeError"),
    (lambda text, frozen: text[: len(text) // 2], "not a frozen stream (JSONDecodeError"),
    (lambda text, frozen: json.dumps({**frozen, "step_classes": [[*frozen["step_classes"][0][:-1], 40],
                                                                 *frozen["step_classes"][1:]]}),
     "step 0 names class 40, which demo_40 does not have"),
    (lambda text, frozen: json.dumps({**frozen, "step_classes": [frozen["step_classes"][0],
                                                                 [frozen["step_classes"][0][0],
                                                                  *frozen["step_classes"][1][1:]],
                                                                 *frozen["step_classes"][2:]]}),
     "is in step 0 and in step 1"),
], ids=["empty", "truncated", "class-out-of-range", "class-in-two-steps"])
def test_a_broken_frozen_stream_is_named(demo_root, tmp_path, monkeypatch, capsys, edit, message):
    import streams.builder

    source = streams.builder.FROZEN_DIR / "demo_4steps.json"
    text = source.read_text()
    (tmp_path / "frozen").mkdir()
    (tmp_path / "frozen" / "demo_4steps.json").write_text(edit(text, json.loads(text)))
    monkeypatch.setattr(streams.builder, "FROZEN_DIR", tmp_path / "frozen")
    line = one_line_error(capsys, _demo_run(demo_root, tmp_path))
    assert str(tmp_path / "frozen" / "demo_4steps.json") in line and message in line
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("content", ["vocabulary: demo_40\nsource_id_offset: 0\norder: [1, 2\n",
                                     "vocabulary: demo_40\norder: [1, 2]\n",
                                     "vocabulary: demo_40\nsource_id_offset: 0\norder: [a, b]\n"],
                         ids=["yaml-syntax", "missing-key", "not-ids"])
def test_a_malformed_order_yaml_is_named(demo_root, tmp_path, monkeypatch, capsys, content):
    import streams.builder

    (tmp_path / "orders").mkdir()
    (tmp_path / "orders" / "mine.yaml").write_text(content)
    monkeypatch.setattr(streams.builder, "ORDER_PRESETS_DIR", tmp_path / "orders")
    line = one_line_error(capsys, _demo_run(demo_root, tmp_path, "stream.order=mine"))
    assert f"{tmp_path / 'orders' / 'mine.yaml'}: not a class order file" in line


def test_a_truncated_npy_train_list_is_named(demo_root, tmp_path, capsys):
    lists = tmp_path / "lists"
    lists.mkdir()
    for t in range(2):
        np.save(lists / f"train-{t}.npy", np.arange(t * 4, t * 4 + 4))
    (lists / "train-1.npy").write_bytes((lists / "train-1.npy").read_bytes()[:-9])
    line = one_line_error(capsys, _demo_run(demo_root, tmp_path, "stream.num_steps=2", f"stream.train_lists={lists}"))
    assert f"{lists / 'train-1.npy'}: not a readable .npy array" in line
    assert not (tmp_path / "results").exists()


def test_cuda_without_a_gpu_is_one_line(demo_root, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    line = one_line_error(capsys, _demo_run(demo_root, tmp_path, "device=cuda"))
    assert "device=cuda: no CUDA GPU is usable here" in line and "device=cpu" in line
    assert not (tmp_path / "results").exists()


@pytest.fixture
def unreachable_hub(tmp_path, monkeypatch):
    """The Hugging Face hub at a closed local port, with an empty cache: no network is touched."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path / "hub"


def test_pretrained_weights_without_network_fail_fast_in_one_line(demo_root, tmp_path, capsys, unreachable_hub):
    """Without the weights and without network, open_clip retried for about a minute, then a 117-line traceback."""
    import time

    started = time.monotonic()
    line = one_line_error(capsys, _demo_run(demo_root, tmp_path, "model=vit_b16_openai"))
    assert time.monotonic() - started < 30
    assert "model.pretrained=openai: open_clip's ViT-B-16 weights are not in the local cache and 127.0.0.1 " \
           "cannot be reached" in line and "model.pretrained=null" in line
    assert not (tmp_path / "results").exists()


def test_cached_pretrained_weights_need_no_network(unreachable_hub):
    from benchmark.models.weights import check_open_clip_weights

    snapshot = unreachable_hub / "models--timm--vit_base_patch16_clip_224.openai" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc")
    (snapshot / "open_clip_model.safetensors").write_bytes(b"weights")
    check_open_clip_weights("ViT-B-16", "openai")  # found in the cache: the unreachable hub is never asked
    with pytest.raises(UserError, match="is not one of open_clip's weights for ViT-B-16 .*openai"):
        check_open_clip_weights("ViT-B-16", "opneai")


@pytest.mark.parametrize("damage", [lambda data: data[: len(data) // 2], lambda data: b""], ids=["truncated", "empty"])
def test_a_truncated_cached_predictions_file_is_named(tmp_path, damage):
    from omegaconf import OmegaConf

    from benchmark.data.types import Sample
    from benchmark.models.cached.format import image_arrays, write_image_predictions, write_meta
    from benchmark.models.cached.segmenter import CachedSegmenter

    write_meta(tmp_path, "toy", [3, 5], producer="test")
    write_image_predictions(tmp_path, "a", image_arrays(np.zeros((1, 4, 4), np.float32), np.zeros((1, 2), np.float32),
                                                        (4, 4), (4, 4)))
    path = tmp_path / "a.npz"
    path.write_bytes(damage(path.read_bytes()))
    segmenter = CachedSegmenter(OmegaConf.create({"kind": "cached", "predictions_dir": str(tmp_path), "batch_size": 2}))
    with pytest.raises(DataError, match=f"{path}: unreadable predictions"):
        segmenter.image_features([Sample("a", np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.int64))])
    with pytest.raises(DataError, match=f"{path}: unreadable predictions"):
        segmenter.class_scores("a")


def test_a_full_feature_cache_directory_is_named(demo_root, tmp_path, monkeypatch, capsys):
    """The disk feature cache's writes fail with ENOSPC: one line naming the cache folder, the run failed."""
    from full_disk import full_disk

    from benchmark.models.feature_cache import FeatureCache

    real_put = FeatureCache.put

    def put(self, key, **arrays):
        with full_disk(0):
            real_put(self, key, **arrays)

    monkeypatch.setattr(FeatureCache, "put", put)
    cache = tmp_path / "features"
    line = one_line_error(capsys, _demo_run(demo_root, tmp_path, f"model.cache_dir={cache}"))
    assert f"no space left on the device of {cache}/" in line
    [manifest] = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*/*/*/manifest.json")]
    assert manifest["status"] == "failed" and "no space left" in manifest["failure"]
