"""Each CSS paper's protocol preset (configs/protocol/, benchmark/protocol.py) against the upstream code it follows,
on tiny hand-made label maps. Upstream commits: fcdl94/MiB 3da2fe3f9b35e5c96997ad24d2aa912f19318074, arthurdouillard/
CVPR2021_PLOP 341eecbb2bd202b0afcc8a7e8be09e9fb3f76231, clovaai/ECLIPSE 44deea8d8d3d4032311d8055acde59c2ffc6c95f,
fcdl94/CoMFormer 640496b58100fe2e3ab5bf7e9eb79818246bee44.

The hand-made data: four classes revealed as C_0 = {0, 1}, C_1 = {2}, C_2 = {3}, in two vocabularies: "ade", without
a background class (upstream files store ADE's void as 0 and class c as c + 1), and "voc", whose class 0 is
background (upstream: VOC label values, void = the 255 boundary). Expected maps are written out by hand from the
cited lines; V = void (IGNORE_LABEL), B = BACKGROUND_LABEL, R = the extra background row K = 4.
"""
import json
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
import pytest

from benchmark.config import ProtocolConfig, group_options, load_config
from benchmark.data.types import BACKGROUND_LABEL, IGNORE_LABEL, ClassInfo, Sample, Vocabulary
from benchmark.evaluation.semantic import SemanticEvaluator, per_class_iou
from benchmark.method import filter_sample
from benchmark.protocol import Protocol
from streams.builder import assign_images

V, B, R = IGNORE_LABEL, BACKGROUND_LABEL, 4
PRESETS = ("mib", "plop", "eclipse", "comformer")
STEP_CLASSES = [[0, 1], [2], [3]]
LABELS = np.array([[0, 1, 2, 3],
                   [V, 2, 3, V]])


def vocabulary(kind: str) -> Vocabulary:
    names = ["background" if kind == "voc" else "wall", "a", "b", "c"]
    return Vocabulary(kind, tuple(ClassInfo(i, n, (n,)) for i, n in enumerate(names)))


@lru_cache(maxsize=None)
def preset(name: str):
    return load_config([f"protocol={name}"]).protocol


def protocol(name: str, kind: str) -> Protocol:
    return Protocol.of(preset(name), vocabulary(kind))


def sample(labels: np.ndarray = LABELS) -> Sample:
    return Sample("img", np.zeros((*labels.shape, 3), np.uint8), labels.astype(np.int64))


def training_map(name: str, kind: str, new_classes: list[int]) -> np.ndarray:
    s = sample()
    return protocol(name, kind).training_labels(s, filter_sample(s, new_classes), new_classes).sem_seg


def evaluation_map(name: str, kind: str, scored: list[int], labels: np.ndarray = LABELS) -> np.ndarray | None:
    s = sample(labels)
    truth = protocol(name, kind).evaluation_truth(s, filter_sample(s, scored), scored)
    return None if truth is None else truth.sem_seg


def test_every_preset_composes_and_differs_from_the_default():
    assert set(group_options("protocol")) == {"covseg", *PRESETS}
    default = load_config([])
    assert default.protocol.name == "covseg"
    assert dict(default.protocol) == {**vars(ProtocolConfig()), "name": "covseg"}  # today's behaviour
    for name in PRESETS:
        cfg = load_config([f"protocol={name}"])
        policies = {k: v for k, v in cfg.protocol.items() if k != "name"}
        assert cfg.protocol.name == name and policies != {k: v for k, v in default.protocol.items() if k != "name"}
    # the acceptance command: MiB's ADE 100-50 with disjoint image selection (MiB argparser.py:194, utils.py:34)
    assert load_config(["method=finetune", "stream=ade150_100-50", "protocol=mib"]).stream.mode == "disjoint"
    assert load_config(["stream=ade150_100-50", "protocol=mib", "stream.mode=overlap"]).stream.mode == "overlap"
    for name in ("plop", "eclipse", "comformer"):
        assert load_config(["stream=ade150_100-50", f"protocol={name}"]).stream.mode == "overlap"


def test_covseg_ignores_other_classes_void_and_unseen_classes():
    assert training_map("covseg", "ade", [2]).tolist() == [[V, V, 2, V], [V, 2, V, V]]
    assert evaluation_map("covseg", "ade", [0, 1, 2]).tolist() == [[0, 1, 2, V], [V, 2, V, V]]
    assert evaluation_map("covseg", "ade", [0, 1], np.array([[3, V]])).tolist() == [[V, V]]  # counted all the same
    assert protocol("covseg", "ade").confusion_size == 4


def test_mib_background_in_training_ignored_unseen_and_only_images_with_a_seen_class():
    # dataset/ade.py:244 masking_value = 0 in training, :256 other classes (and void, label 0) -> masking_value
    assert training_map("mib", "ade", [2]).tolist() == [[B, B, 2, B], [B, 2, B, B]]
    # dataset/voc.py:129 background 0 among every step's labels, :143/:148/:156 others and 255 -> 0
    assert training_map("mib", "voc", [2]).tolist() == [[0, 0, 2, 0], [0, 2, 0, 0]]
    # dataset/ade.py:246/:256 (test: masking_value = 255): unseen classes and void ignored
    assert evaluation_map("mib", "ade", [0, 1, 2]).tolist() == [[0, 1, 2, V], [V, 2, V, V]]
    assert evaluation_map("mib", "voc", [0, 1, 2]).tolist() == [[0, 1, 2, V], [V, 2, V, V]]
    # run.py:99-101 + dataset/utils.py:23-24,32: only images with a seen class, background 0 not counting as one
    assert evaluation_map("mib", "ade", [0, 1, 2], np.array([[3, V]])) is None
    assert evaluation_map("mib", "voc", [0, 1, 2], np.array([[0, 3]])) is None
    assert evaluation_map("mib", "voc", [0, 1, 2], np.array([[0, 1]])).tolist() == [[0, 1]]
    assert protocol("mib", "ade").confusion_size == 4


def test_plop_background_in_training_and_as_a_scored_row_with_only_images_with_a_seen_class():
    # dataset/ade.py:135 masking_value = 0, :147 other classes and void (label 0) -> 0
    assert training_map("plop", "ade", [2]).tolist() == [[B, B, 2, B], [B, 2, B, B]]
    # dataset/voc.py:182 others -> 0, :184 255 stays 255
    assert training_map("plop", "voc", [2]).tolist() == [[0, 0, 2, 0], [V, 2, 0, V]]
    # argparser.py:490 ignore_test_bg False -> dataset/ade.py:135/:147 at test: unseen and void -> 0, a scored row
    assert evaluation_map("plop", "ade", [0, 1, 2]).tolist() == [[0, 1, 2, R], [R, 2, R, R]]
    assert evaluation_map("plop", "voc", [0, 1, 2]).tolist() == [[0, 1, 2, 0], [V, 2, 0, V]]
    # run.py:122-127 + dataset/utils.py:32: only images with a seen class
    assert evaluation_map("plop", "ade", [0, 1, 2], np.array([[3, V]])) is None
    assert protocol("plop", "ade").confusion_size == 5 and protocol("plop", "voc").confusion_size == 4


@pytest.mark.parametrize("name", ["eclipse", "comformer"])
def test_eclipse_and_comformer_background_then_every_image_with_unseen_as_a_scored_row(name):
    # continual/data/semantic_wrapper.py:129 (masking_value 0) with ADE's void stored as 0; :119 255 stays 255
    assert training_map(name, "ade", [2]).tolist() == [[B, B, 2, B], [B, 2, B, B]]
    assert training_map(name, "voc", [2]).tolist() == [[0, 0, 2, 0], [V, 2, 0, V]]
    # semantic_wrapper.py:105-107,122-123,129 at test: unseen and void (0) -> 0; :119 255 stays ignored
    assert evaluation_map(name, "ade", [0, 1, 2]).tolist() == [[0, 1, 2, R], [R, 2, R, R]]
    assert evaluation_map(name, "voc", [0, 1, 2]).tolist() == [[0, 1, 2, 0], [V, 2, 0, V]]
    # semantic_wrapper.py:297 (t = np.ones): every test image counts, even one without a seen class
    assert evaluation_map(name, "ade", [0, 1, 2], np.array([[3, V]])).tolist() == [[R, R]]


def test_panoptic_ground_truth_drops_other_segments_under_every_preset():
    """ECLIPSE / CoMFormer semantic_wrapper.py:161-172: segments of class 0 (the other classes) are dropped, as
    filter_sample drops them for covseg; the protocol changes the semantic map only."""
    from benchmark.data.types import SegmentInfo

    pan = np.array([[1, 2], [3, 0]])
    segments = [SegmentInfo(1, 0), SegmentInfo(2, 2), SegmentInfo(3, 3)]
    s = Sample("img", np.zeros((2, 2, 3), np.uint8), np.array([[0, 2], [3, V]]), pan, segments)
    for name in ("covseg", *PRESETS):
        out = protocol(name, "ade").training_labels(s, filter_sample(s, [2]), [2])
        assert out.pan_seg.tolist() == [[0, 2], [0, 0]] and [seg.id for seg in out.segments] == [2]


def test_background_row_makes_seen_class_predictions_on_unseen_pixels_false_positives():
    """ECLIPSE continual/evaluation/continual_evaluation.py:101-106: row 0 is in the confusion matrix, so predicting
    class 2 on unseen-class pixels lowers its IoU; covseg ignores those pixels."""
    pred = np.array([[0, 1, 2, 2], [2, 2, 2, 2]])
    ious = {}
    for name in ("covseg", "eclipse"):
        p = protocol(name, "ade")
        evaluator = SemanticEvaluator(p.confusion_size)
        evaluator.process(pred, evaluation_map(name, "ade", [0, 1, 2]))
        ious[name] = per_class_iou(evaluator.confusion)
    assert ious["covseg"][2] == pytest.approx(1.0)  # 2 pixels of class 2, predicted exactly there (others ignored)
    assert ious["eclipse"][2] == pytest.approx(2 / 6)  # + 4 background-row pixels predicted as 2
    assert ious["eclipse"].shape == (5,) and ious["covseg"].shape == (4,)


def mib_filter_images(per_image: list[list[int]], labels: list[int], labels_old: list[int], overlap: bool) -> list[int]:
    """fcdl94/MiB dataset/utils.py:19-42 (commit 3da2fe3f), transcribed onto per-image class lists."""
    labels = [x for x in labels if x != 0]  # :23-24
    labels_cum = labels + labels_old + [0, 255]  # :29
    if overlap:
        fil = lambda c: any(x in labels for x in c)  # noqa: E731  (:32)
    else:
        fil = lambda c: any(x in labels for x in c) and all(x in labels_cum for x in c)  # noqa: E731  (:34)
    return [i for i, c in enumerate(per_image) if fil(c)]


@pytest.mark.parametrize("mode, overlap", [("disjoint", False), ("overlap", True)])
def test_image_selection_equals_mibs_filter_images(mode, overlap):
    """stream.mode=disjoint is MiB's default (argparser.py:194 --overlap False), overlap is PLOP's / ECLIPSE's."""
    rng = np.random.default_rng(0)
    per_image = [sorted(set(rng.integers(0, 4, rng.integers(0, 4)).tolist())) for _ in range(200)]
    ours = assign_images(SimpleNamespace(mode=mode, order_seed=0), None, per_image, STEP_CLASSES)
    upstream_ids = [[c + 1 for c in classes] for classes in per_image]  # ADE upstream: class c is label c + 1
    tasks = [[0] + [c + 1 for c in STEP_CLASSES[0]]] + [[c + 1 for c in s] for s in STEP_CLASSES[1:]]  # tasks.py
    for t in range(len(STEP_CLASSES)):
        labels_old = [x for task in tasks[:t] for x in task]
        assert ours[t] == mib_filter_images(upstream_ids, list(tasks[t]), labels_old, overlap)


def test_a_run_records_its_preset_and_scores_a_background_row(run_demo):
    run_dir, _ = run_demo("method=zeroshot", "stream.max_train_images_per_step=2", "eval.max_images=4",
                          "eval.initial=false", "protocol=plop")
    manifest = json.loads((run_dir / "manifest.json").read_text())["protocol"]["preset"]
    assert manifest == {"name": "plop", "selection": "overlap", "train_labels": "background",
                        "train_void": "background_if_no_class", "eval_images": "with_scored",
                        "eval_unseen": "background", "eval_void": "background_if_no_class"}
    confusion = np.load(run_dir / "stats" / "step_000.npz")["confusion"]
    assert confusion.shape == (41, 41) and confusion[40].sum() > 0  # the demo's 40 classes + the background row


def test_a_mib_order_with_a_setting_mib_never_published_warns():
    """MiB's orders b and c exist for tasks_ade 50b/c, 100-50b/c, 100-10b/c (tasks.py), semantic only."""
    import warnings

    for stream, order in (("ade150_100-5", "mib_b"), ("ade150_50-10", "mib_c"), ("ade150_panoptic_100-50", "mib_b")):
        with pytest.warns(UserWarning, match=f"stream.order={order} on stream '{stream}'.*never published"):
            load_config([f"stream={stream}", f"stream.order={order}"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for stream in ("ade150_100-50", "ade150_100-10", "ade150_50-50"):
            for order in ("mib_b", "mib_c", "natural"):
                load_config([f"stream={stream}", f"stream.order={order}"])
        load_config(["stream=ade150_panoptic_100-5", "stream.order=eclipse_b"])  # orders without a `published` list
