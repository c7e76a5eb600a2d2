"""Golden tests: under protocol=mib (disjoint and overlap) and protocol=plop, each step's training images and label
maps AS A METHOD SEES THEM IN `learn` (benchmark.method.StepData.of_stream with the protocol's training-label policy,
built as benchmark/runner.py builds it) equal those of the upstream code, on hand-made VOC-format and ADE-format
folders of a handful of images, read by this project's own readers (voc_21; ade20k_150 after `prepare ade20k_150`).

Upstream, at the commits configs/protocol/ and tests/cited_splits.py cite:
- fcdl94/MiB 3da2fe3f9b35e5c96997ad24d2aa912f19318074 and arthurdouillard/CVPR2021_PLOP
  341eecbb2bd202b0afcc8a7e8be09e9fb3f76231: their image filtering and target transforms need their repositories
  (and torchvision's transform wrappers), so their logic is transcribed below as a reference, line by line, each
  step citing its file:line. Their label maps are in the files' own label space (VOC values; ADE 0 = void, class c
  of this project = c + 1) and so are compared after mapping ours there (`to_upstream`).
- Continvvm/continuum 1.2.7 (`continuum.scenarios.SegmentationClassIncremental`, which implements MiB's modes): run
  itself over the same files (skipped when `continuum` is not installed: it is in the `test` extra).
Class orders are natural (the published VOC 15-5 / 15-1 and ADE 100-50 splits), so upstream's reordering
(`inverted_order`) is the identity and label values compare directly.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.data.types import BACKGROUND_LABEL, IGNORE_LABEL

H, W = 6, 8

# image id -> the upstream label values it holds, in order of area (the first fills the map; void 255 / ADE 0 is
# added on a corner where `void` says so). Chosen to tell the modes apart: background alone, future classes only,
# old + new, new + future, every class of a step in some image.
VOC_TRAIN = {
    "2007_000001": [0], "2007_000002": [0, 3], "2007_000003": [0, 3, 17], "2007_000004": [0, 16],
    "2007_000005": [0, 16, 5], "2007_000006": [0, 18], "2007_000007": [19, 0], "2007_000008": [20, 16],
    "2007_000009": [17, 18], "2007_000010": [0, 20, 2], "2007_000011": [19, 3], "2007_000012": [15, 1],
}
VOC_VAL = {"2007_000100": [0, 7]}
ADE_TRAIN = {
    "ADE_train_00000001": [1, 5], "ADE_train_00000002": [120, 3], "ADE_train_00000003": [101, 150],
    "ADE_train_00000004": [7], "ADE_train_00000005": [140, 100, 2], "ADE_train_00000006": [100],
    "ADE_train_00000007": [133], "ADE_train_00000008": [50, 60, 70],
}
ADE_VAL = {"ADE_val_00000001": [1, 120]}
VOID = {"2007_000002", "2007_000005", "2007_000009", "2007_000012", "ADE_train_00000001", "ADE_train_00000003",
        "ADE_train_00000006"}


def label_map(values: list[int], void: int | None) -> np.ndarray:
    """Column bands of `values` (the first one widest), the corner pixel `void` when given."""
    labels = np.full((H, W), values[0], dtype=np.uint8)
    for k, value in enumerate(values[1:]):
        labels[:, W - 2 * (k + 1): W - 2 * k] = value
    if void is not None:
        labels[0, 0] = void
    return labels


def write_pair(rng, image_path: Path, label_path: Path, labels: np.ndarray) -> None:
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(image_path, quality=95)
    Image.fromarray(labels).save(label_path)


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory) -> Path:
    """VOCdevkit/VOC2012 as MiB's / PLOP's download_voc.sh leave it (JPEGImages, SegmentationClassAug, the split
    lists in MiB's `/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png` form)."""
    root = tmp_path_factory.mktemp("voc")
    voc = root / "VOCdevkit" / "VOC2012"
    rng = np.random.default_rng(0)
    for listing, images in (("train_aug.txt", VOC_TRAIN), ("val.txt", VOC_VAL)):
        for image_id, values in images.items():
            write_pair(rng, voc / "JPEGImages" / f"{image_id}.jpg", voc / "SegmentationClassAug" / f"{image_id}.png",
                       label_map(values, 255 if image_id in VOID else None))
        (voc / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
        (voc / "ImageSets" / "Segmentation" / listing).write_text(
            "".join(f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png\n" for i in images))
    return root


@pytest.fixture(scope="module")
def ade_root(tmp_path_factory) -> Path:
    """ADEChallengeData2016 as released (annotations/: 0 = void, 1..150, what MiB / PLOP read), converted by
    `prepare ade20k_150` into the annotations_detectron2/ this project reads."""
    from benchmark.data.prepare import main as prepare

    root = tmp_path_factory.mktemp("ade")
    ade = root / "ADEChallengeData2016"
    rng = np.random.default_rng(1)
    for folder, images in (("training", ADE_TRAIN), ("validation", ADE_VAL)):
        for image_id, values in images.items():
            write_pair(rng, ade / "images" / folder / f"{image_id}.jpg", ade / "annotations" / folder / f"{image_id}.png",
                       label_map(values, 0 if image_id in VOID else None))
    assert prepare(["ade20k_150", "--root", str(root)]) == 0
    return root


# ------------------------------------------------------------------------------------------- this project's side
def project_steps(stream: str, root: Path, protocol: str, *overrides: str) -> list[list[tuple[str, np.ndarray, np.ndarray]]]:
    """(image id, pixels, label map) of every training sample of every step, as `learn` receives them: the runner's
    stream, protocol and StepData.of_stream (benchmark/runner.py `_run_steps`)."""
    from benchmark.config import data_root, load_config
    from benchmark.method import StepData
    from benchmark.protocol import Protocol
    from streams.builder import build_stream, open_dataset

    cfg = load_config([f"stream={stream}", f"protocol={protocol}", f"data.root={root}", *overrides])
    train = open_dataset(cfg.stream.dataset, "train", data_root(cfg))
    built = build_stream(cfg.stream, train)
    policy = Protocol.of(cfg.protocol, train.vocabulary)
    steps = []
    for t in range(built.num_steps):
        step = StepData.of_stream(t, built.step_classes[t], built.seen_classes(t), train.vocabulary, train,
                                  built.train_indices[t], relabel=policy.training_labels)
        steps.append([(s.image_id, s.image, s.sem_seg) for s in step.samples()])
    return steps


def to_upstream(sem_seg: np.ndarray, dataset: str) -> np.ndarray:
    """Our label map in the upstream files' label space: VOC values as they are; ADE class c -> c + 1, MiB's
    background (BACKGROUND_LABEL) -> 0. Ignored pixels -> 255 in both."""
    assert sem_seg.dtype == np.int64
    if dataset == "voc":
        assert not (sem_seg == BACKGROUND_LABEL).any()  # VOC has its own background class, 0
        return np.where(sem_seg == IGNORE_LABEL, 255, sem_seg)
    return np.select([sem_seg == IGNORE_LABEL, sem_seg == BACKGROUND_LABEL], [255, 0], sem_seg + 1)


# ------------------------------------------------------------------------------- MiB / PLOP, transcribed
def voc_tasks(step_sizes: list[int]) -> list[list[int]]:
    """tasks.py's natural-order VOC task dicts: step 0 holds the background 0 and 1..15, later steps the next
    ids. MiB tasks.py:16-29 ("15-5", "15-5s", i.e. 15-1), PLOP tasks.py:9-21."""
    bounds = np.cumsum([0, *step_sizes])
    return [list(range(int(bounds[t]), int(bounds[t + 1]))) for t in range(len(step_sizes))]


def get_task_labels(tasks: list[list[int]], step: int) -> tuple[list[int], list[int]]:
    """MiB tasks.py:146-147 = PLOP tasks.py:225-226: the step's labels and every earlier step's."""
    return list(tasks[step]), [label for s in range(step) for label in tasks[s]]


def strip_zero(labels: list[int]) -> list[int]:
    """MiB dataset/voc.py:124-125 (`__strip_zero`, :179-181), ade.py:225-226 (:276-278); PLOP voc.py:145, ade.py:102-103."""
    return [label for label in labels if label != 0]


def filter_images(targets: list[np.ndarray], labels: list[int], labels_old: list[int], overlap: bool) -> list[int]:
    """MiB dataset/utils.py:19-42, identical in PLOP dataset/utils.py:19-42."""
    labels = [label for label in labels if label != 0]  # :23-24
    labels_cum = labels + labels_old + [0, 255]  # :29
    kept = []
    for index, target in enumerate(targets):  # :36
        cls = np.unique(target)  # :37
        if overlap:  # :31-32
            keep = any(x in labels for x in cls)
        else:  # :34
            keep = any(x in labels for x in cls) and all(x in labels_cum for x in cls)
        if keep:  # :38-39
            kept.append(index)
    return kept


def apply(target: np.ndarray, mapping) -> np.ndarray:
    """torch's `t.apply_(lambda x: ...)` over a label map (Subset's target_transform, MiB dataset/utils.py:66-67)."""
    return np.vectorize(mapping, otypes=[np.int64])(target)


def mib_target(target: np.ndarray, dataset: str, labels: list[int], labels_old: list[int]) -> np.ndarray:
    """The training target (train=True, masking=True: MiB run.py:83-86, argparser `--no_mask` off)."""
    labels, labels_old = strip_zero(labels), strip_zero(labels_old)
    order = [0] + labels_old + labels  # voc.py:132, ade.py:233
    masking_value = 0  # voc.py:142-143, ade.py:243-244 (train)
    inverted_order = {label: order.index(label) for label in order}  # voc.py:147, ade.py:248
    if dataset == "voc":
        own = [0] + labels  # voc.py:129
        inverted_order[255] = masking_value  # voc.py:148
        tmp_labels = own + [255]  # voc.py:154
        return apply(target, lambda x: inverted_order[x] if x in tmp_labels else masking_value)  # voc.py:156
    inverted_order[0] = masking_value  # ade.py:249
    return apply(target, lambda x: inverted_order[x] if x in labels else masking_value)  # ade.py:230, :256


def plop_target(target: np.ndarray, dataset: str, labels: list[int], labels_old: list[int]) -> np.ndarray:
    """The training target (masking=True, data_masking="current": PLOP argparser.py:383-387; ignore_test_bg=False:
    argparser.py:490)."""
    labels, labels_old = strip_zero(labels), strip_zero(labels_old)
    order = [0] + labels_old + labels  # voc.py:155, ade.py:112
    inverted_order = {label: order.index(label) for label in order}  # voc.py:183, ade.py:130
    masking_value = 0  # voc.py:182, ade.py:135 ("Future classes will be considered as background")
    inverted_order[255] = 255  # voc.py:184, ade.py:136
    if dataset == "voc":
        tmp_labels = [0] + labels + [255]  # voc.py:152, :193-194
        return apply(target, lambda x: inverted_order[x] if x in tmp_labels else masking_value)  # voc.py:205-207
    return apply(target, lambda x: inverted_order[x] if x in labels else masking_value)  # ade.py:109, :145-147


def upstream_steps(paths: list[tuple[str, Path, Path]], tasks: list[list[int]], dataset: str, overlap: bool,
                   target) -> list[list[tuple[str, np.ndarray, np.ndarray]]]:
    """(image id, pixels, target) of every step's training set, as {MiB,PLOP}SegmentationIncremental(train=True)
    yields them: filter_images over the raw label maps (voc.py:138, ade.py:239), then Subset with the target
    transform (utils.py Subset.__getitem__); images as VOCSegmentation / AdeSegmentation open them (.convert('RGB'))."""
    raw = [np.array(Image.open(label)) for _, _, label in paths]
    steps = []
    for t in range(len(tasks)):
        labels, labels_old = get_task_labels(tasks, t)
        kept = filter_images(raw, strip_zero(labels), strip_zero(labels_old), overlap)
        steps.append([(paths[i][0], np.array(Image.open(paths[i][1]).convert("RGB")),
                       target(raw[i], dataset, labels, labels_old)) for i in kept])
    return steps


def voc_paths(root: Path) -> list[tuple[str, Path, Path]]:
    """MiB voc.py:81-84: the lines of splits/train_aug.txt, in file order."""
    voc = root / "VOCdevkit" / "VOC2012"
    lines = (voc / "ImageSets" / "Segmentation" / "train_aug.txt").read_text().splitlines()
    return [(Path(a).stem, voc / a[1:], voc / b[1:]) for a, b in (line.split(" ") for line in lines)]


def ade_paths(root: Path) -> list[tuple[str, Path, Path]]:
    """MiB ade.py:177-182 (= PLOP's AdeSegmentation): sorted(os.listdir(images/training)), annotations/ beside."""
    ade = root / "ADEChallengeData2016"
    names = sorted(p.name for p in (ade / "images" / "training").iterdir())
    return [(Path(n).stem, ade / "images" / "training" / n, ade / "annotations" / "training" / (n[:-3] + "png"))
            for n in names]


CASES = {  # (our stream, dataset, our step sizes)
    "voc15-5": ("voc21_15-5", "voc", [16, 5]),
    "voc15-1": ("voc21_15-1", "voc", [16, 1, 1, 1, 1, 1]),
    "ade100-50": ("ade150_100-50", "ade", [100, 50]),
}
PROTOCOLS = {  # protocol -> (our overrides, upstream overlap flag, upstream target)
    "mib-disjoint": ("mib", [], False, mib_target),  # MiB argparser.py:194 --overlap off by default
    "mib-overlap": ("mib", ["stream.mode=overlap"], True, mib_target),  # MiB's "-ov" runs (run.py:77-78)
    "plop": ("plop", [], True, plop_target),  # PLOP scripts pass --overlap (configs/protocol/plop.yaml)
}


def roots(case: str, voc_root: Path, ade_root: Path) -> tuple[Path, list[tuple[str, Path, Path]]]:
    root = voc_root if CASES[case][1] == "voc" else ade_root
    return root, (voc_paths if CASES[case][1] == "voc" else ade_paths)(root)


def tasks_of(case: str) -> list[list[int]]:
    _, dataset, sizes = CASES[case]
    if dataset == "voc":
        return voc_tasks(sizes)
    return [list(range(0, 101)), list(range(101, 151))]  # MiB tasks.py:42-46 tasks_ade["100-50"]; PLOP tasks.py:175-178


def assert_steps_equal(ours, theirs, dataset: str) -> None:
    assert [[i for i, _, _ in step] for step in ours] == [[i for i, _, _ in step] for step in theirs]
    for step_ours, step_theirs in zip(ours, theirs):
        for (image_id, image, labels), (_, their_image, their_labels) in zip(step_ours, step_theirs):
            np.testing.assert_array_equal(image, their_image, err_msg=image_id)
            np.testing.assert_array_equal(to_upstream(labels, dataset), their_labels, err_msg=image_id)


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
@pytest.mark.parametrize("case", list(CASES))
def test_training_steps_equal_mib_and_plop(case, protocol, voc_root, ade_root):
    stream, dataset, _ = CASES[case]
    name, overrides, overlap, target = PROTOCOLS[protocol]
    root, paths = roots(case, voc_root, ade_root)
    ours = project_steps(stream, root, name, *overrides)
    theirs = upstream_steps(paths, tasks_of(case), dataset, overlap, target)
    assert all(step for step in theirs)  # the hand-made folders give every step images
    assert_steps_equal(ours, theirs, dataset)


def test_the_modes_differ_on_these_folders(voc_root):
    """The hand-made images tell the settings apart (else the golden tests above would prove little)."""
    disjoint = project_steps("voc21_15-5", voc_root, "mib")
    overlap = project_steps("voc21_15-5", voc_root, "mib", "stream.mode=overlap")
    assert [len(s) for s in disjoint] != [len(s) for s in overlap]
    plop = project_steps("voc21_15-5", voc_root, "plop")
    mib = dict((i, labels) for i, _, labels in overlap[1])
    assert any(not np.array_equal(mib[i], labels) for i, _, labels in plop[1])  # void: 0 under MiB, ignored in PLOP
    assert "2007_000001" not in {i for step in overlap for i, _, _ in step}  # background alone: in no step


# --------------------------------------------------------------------------------------------------- continuum
def continuum_steps(paths, dataset: str, sizes: list[int], mode: str) -> list[list[tuple[str, np.ndarray]]]:
    """(image id, label map) of every training task of continuum's SegmentationClassIncremental over the files
    (nb_classes without background 0 and void 255; natural class order 1..N; VOC's step 0 has 15 classes + 0)."""
    continuum = pytest.importorskip("continuum", reason="continuum is in the test extra (pip install -e .[test])")
    from continuum.datasets import InMemoryDataset
    from continuum.scenarios import SegmentationClassIncremental
    from continuum.tasks import TaskType
    from continuum.transforms.segmentation import ToTensor

    assert continuum  # the import is the point
    x = np.array([str(image) for _, image, _ in paths])
    y = np.array([str(label) for _, _, label in paths])
    increments = [sizes[0] - 1, *sizes[1:]] if dataset == "voc" else list(sizes)
    scenario = SegmentationClassIncremental(InMemoryDataset(x, y, data_type=TaskType.SEGMENTATION),
                                            nb_classes=sum(increments), increment=increments, mode=mode,
                                            transformations=[ToTensor()])
    index_of = {str(image): image_id for image_id, image, _ in paths}
    steps = []
    for taskset in scenario:
        step = []
        for k in range(len(taskset)):
            _, target, _ = taskset[k]
            step.append((index_of[str(taskset._x[k])], np.asarray(target).reshape(H, W).astype(np.int64)))
        steps.append(step)
    return steps


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
@pytest.mark.parametrize("case", list(CASES))
def test_training_steps_equal_continuum(case, protocol, voc_root, ade_root):
    """continuum's modes (scenarios/segmentation.py `_filter_images`: overlap / disjoint, as MiB's utils.py) give
    the same images per step; its training targets (`_get_label_transformation`: the task's classes kept, 255
    kept, everything else 0) are PLOP's, and MiB's except on VOC's void, which MiB voc.py:148 sends to 0."""
    stream, dataset, sizes = CASES[case]
    name, overrides, overlap, _ = PROTOCOLS[protocol]
    root, paths = roots(case, voc_root, ade_root)
    ours = project_steps(stream, root, name, *overrides)
    theirs = continuum_steps(paths, dataset, sizes, "overlap" if overlap else "disjoint")
    assert [[i for i, _, _ in step] for step in ours] == [[i for i, _ in step] for step in theirs]
    for step_ours, step_theirs in zip(ours, theirs):
        for (image_id, _, labels), (_, their_labels) in zip(step_ours, step_theirs):
            if name == "mib" and dataset == "voc":
                their_labels = np.where(their_labels == 255, 0, their_labels)
            np.testing.assert_array_equal(to_upstream(labels, dataset), their_labels, err_msg=image_id)


def test_hand_made_folders_are_what_the_readers_read(voc_root, ade_root):
    """Our readers see the same images and label values as the raw files (ADE: c - 1, void 0 -> ignored)."""
    from streams.builder import open_dataset

    voc = open_dataset("voc_21", "train", voc_root)
    assert [voc.image_id(i) for i in range(len(voc))] == list(VOC_TRAIN)
    ade = open_dataset("ade20k_150", "train", ade_root)
    sample = ade.load(0)
    assert sample.image_id == "ADE_train_00000001" and sample.sem_seg[0, 0] == IGNORE_LABEL
    assert set(np.unique(sample.sem_seg)) == {0, 4, IGNORE_LABEL}
    assert json.dumps(sorted(ADE_TRAIN)) == json.dumps([ade.image_id(i) for i in range(len(ade))])
