"""The user's own `folder` dataset (benchmark/data/datasets/folder.py): a small folder, semantic and panoptic,
generated in tmp, run end to end by a method, shown by `streams show`, read by the leaderboard; each bad input of
`prepare folder --check` gives one line naming the file, exit 2, and writes nothing."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from benchmark.__main__ import main

CLASSES = [
    {"id": 0, "name": "sky", "thing": False, "synonyms": ["sky", "clouds"]},
    {"id": 1, "name": "grass", "thing": False, "synonyms": ["grass", "lawn"]},
    {"id": 2, "name": "ball", "thing": True, "synonyms": ["ball"]},
    {"id": 3, "name": "box", "thing": True, "synonyms": ["box", "crate"]},
    {"id": 4, "name": "dog", "thing": True},
]
COLOURS = np.array([[90, 150, 230], [60, 170, 60], [230, 40, 40], [150, 100, 50], [240, 220, 200]], dtype=np.uint8)
SIZE = (24, 32)  # (H, W)


def draw(rng: np.random.Generator, things: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """(image, semantic labels, panoptic ids, segments_info) of one picture: sky over grass, a void top row,
    one rectangle per thing class in `things`."""
    height, width = SIZE
    semantic = np.where(np.arange(height)[:, None] < height // 2, 0, 1).repeat(width, axis=1)
    panoptic = semantic + 1  # segment 1: sky, 2: grass
    segments = [{"id": 1, "category_id": 0, "iscrowd": 0}, {"id": 2, "category_id": 1, "iscrowd": 0}]
    for k, cls in enumerate(things):
        y, x = int(rng.integers(2, height - 8)), int(rng.integers(0, width - 8))
        semantic[y:y + 6, x:x + 7] = cls
        panoptic[y:y + 6, x:x + 7] = 3 + k
        segments.append({"id": 3 + k, "category_id": cls, "iscrowd": 0})
    semantic[0] = -1  # void
    panoptic[0] = 0
    segments = [s for s in segments if (panoptic == s["id"]).any()]
    image = COLOURS[np.clip(semantic, 0, None)].astype(np.int16) + rng.integers(-20, 20, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8), semantic, panoptic, segments


def make_folder(root: Path, panoptic: bool = False, sixteen_bit: bool = False, seed: int = 0,
                counts: dict[str, int] | None = None) -> Path:
    """A folder dataset: classes.yaml, images/ (jpg and png), labels/ (8- or 16-bit), optionally panoptic/."""
    from benchmark.data.readers import id_to_rgb

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.yaml").write_text(yaml.safe_dump(CLASSES, sort_keys=False))
    for split, count in (counts or {"train": 8, "val": 4}).items():
        for folder in ("images", "labels") + (("panoptic",) if panoptic else ()):
            (root / folder / split).mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            image, semantic, pan, segments = draw(rng, [2 + i % 3, 2 + (i + 1) % 3])
            name = f"{split}_{i:03d}"
            image_file = f"{name}.{'png' if i % 2 else 'jpg'}"
            Image.fromarray(image).save(root / "images" / split / image_file, quality=95)
            ignore, dtype = (65535, np.uint16) if sixteen_bit else (255, np.uint8)
            Image.fromarray(np.where(semantic < 0, ignore, semantic).astype(dtype)).save(root / "labels" / split / f"{name}.png")
            if panoptic:
                Image.fromarray(id_to_rgb(pan)).save(root / "panoptic" / split / f"{name}.png")
                images.append({"id": i, "file_name": image_file, "height": SIZE[0], "width": SIZE[1]})
                annotations.append({"image_id": i, "file_name": f"{name}.png", "segments_info": segments})
        if panoptic:
            categories = [{"id": c["id"], "name": c["name"], "isthing": int(c["thing"])} for c in CLASSES]
            (root / "panoptic" / f"{split}.json").write_text(json.dumps(
                {"images": images, "annotations": annotations, "categories": categories}))
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("mydata") / "mydata", panoptic=True)


def run(folder: Path, results: Path, *overrides: str) -> tuple[Path, dict]:
    from benchmark.config import load_config
    from benchmark.runner import run_stream

    cfg = load_config(["stream=folder", f"stream.path={folder}", "stream.num_steps=2", f"results_dir={results}",
                       "quiet=true", *overrides])
    run_dir = run_stream(cfg)
    return run_dir, json.loads((run_dir / "summary.json").read_text())


def test_check_passes_and_writes_nothing(folder, capsys):
    before = tree(folder)
    assert main(["prepare", "folder", "--root", str(folder), "--check"]) == 0
    assert "5 classes, 8 train and 4 val images checked, with their panoptic annotations" in capsys.readouterr().out
    assert tree(folder) == before


def test_reader_keeps_ids_names_synonyms_and_void(folder, tmp_path):
    from benchmark.data.datasets import build_dataset
    from benchmark.data.types import IGNORE_LABEL

    train = build_dataset("folder", "train", folder)
    assert [(c.id, c.name, c.synonyms, c.isthing) for c in train.vocabulary.classes][:3] == [
        (0, "sky", ("sky", "clouds"), False), (1, "grass", ("grass", "lawn"), False), (2, "ball", ("ball",), True)]
    assert train.vocabulary.classes[4].synonyms == ("dog",)  # no synonyms: the name
    sample = train.load(1)
    assert sample.image_id == "train_001" and sample.image.shape == (*SIZE, 3)
    assert (sample.sem_seg[0] == IGNORE_LABEL).all() and set(np.unique(sample.sem_seg[1:])) <= {0, 1, 2, 3, 4}
    sixteen = build_dataset("folder", "train", make_folder(tmp_path / "sixteen", sixteen_bit=True))
    np.testing.assert_array_equal(sixteen.load(1).sem_seg, sample.sem_seg)  # 65535 in 16-bit maps: ignore too
    panoptic = build_dataset("folder_panoptic", "train", folder).load(1)
    np.testing.assert_array_equal(panoptic.sem_seg, sample.sem_seg)
    assert [(s.category_id, s.isthing) for s in panoptic.segments] == [(0, False), (1, False), (3, True), (4, True)]


def test_a_method_runs_end_to_end_and_the_leaderboard_reads_it(folder, tmp_path, capsys):
    run_dir, summary = run(folder, tmp_path / "results", "method=knnclip")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert len(summary["metrics"]["miou"]["per_step"]) == 2 if "per_step" in summary["metrics"]["miou"] else True
    assert 0 <= summary["metrics"]["miou"]["final"] <= 100
    assert main(["streams", "show", "folder", f"stream.path={folder}", "stream.num_steps=2"]) == 0
    shown = capsys.readouterr().out
    assert f"hash {manifest['stream_hash']}" in shown and "step 1:" in shown
    assert main(["leaderboard", f"results_dir={tmp_path / 'results'}"]) == 0
    assert "knnclip" in capsys.readouterr().out


def test_panoptic_stream_scores_pq(folder, tmp_path):
    from benchmark.config import load_config
    from benchmark.runner import run_stream

    cfg = load_config(["stream=folder_panoptic", f"stream.path={folder}", "stream.steps=[[0,2],[1,3,4]]",
                       f"results_dir={tmp_path}", "quiet=true", "method=zeroshot"])
    summary = json.loads((run_stream(cfg) / "summary.json").read_text())
    assert "pq" in summary["metrics"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["zeroshot", "finetune", "replay", "joint", "lwf", "ewc", "avalanche"])
def test_every_method_runs_on_a_folder(folder, tmp_path, method):
    _, summary = run(folder, tmp_path, f"method={method}")
    assert 0 <= summary["metrics"]["miou"]["final"] <= 100


def stream_of(folder: Path, *overrides: str):
    from benchmark.config import data_root, load_config
    from streams.builder import build_stream, open_dataset

    cfg = load_config(["stream=folder", f"stream.path={folder}", *overrides])
    return build_stream(cfg.stream, open_dataset("folder", "train", data_root(cfg)))


def test_steps_order_seed_and_the_hash(folder, tmp_path):
    explicit = stream_of(folder, "stream.steps=[[4,0],[1,2,3]]")
    assert explicit.step_classes == [[0, 4], [1, 2, 3]] and explicit.class_order == [4, 0, 1, 2, 3]
    drawn = [stream_of(folder, "stream.num_steps=2", f"stream.order_seed={s}").class_order for s in (0, 1)]
    assert drawn[0] != drawn[1]
    base = stream_of(folder, "stream.num_steps=2")
    copy = shutil.copytree(folder, tmp_path / "elsewhere")
    assert stream_of(copy, "stream.num_steps=2").hash == base.hash  # content, not location
    classes = yaml.safe_load((copy / "classes.yaml").read_text())
    classes[4]["synonyms"] = ["dog", "puppy"]
    (copy / "classes.yaml").write_text(yaml.safe_dump(classes))
    assert stream_of(copy, "stream.num_steps=2").hash != base.hash  # the class file
    (copy / "classes.yaml").write_text(yaml.safe_dump(CLASSES, sort_keys=False))
    assert stream_of(copy, "stream.num_steps=2").hash == base.hash
    shutil.copy(copy / "images" / "val" / "val_000.jpg", copy / "images" / "val" / "val_009.jpg")
    shutil.copy(copy / "labels" / "val" / "val_000.png", copy / "labels" / "val" / "val_009.png")
    assert stream_of(copy, "stream.num_steps=2").hash != base.hash  # the file list (a validation image too)


@pytest.mark.parametrize("steps, message", [
    ("[[0,1],[2,3]]", r"class 4 \(dog\) is in no step"),
    ("[[0,1,5],[2,3,4]]", "step 0 names class 5"),
    ("[[0,1,2],[2,3,4]]", "class 2 is in step 0 and in step 1"),
])
def test_bad_steps_are_refused(folder, steps, message):
    from benchmark.errors import UserError

    with pytest.raises(UserError, match=message):
        stream_of(folder, f"stream.steps={steps}")


def test_fcclip_metadata_has_the_class_files_synonyms(folder):
    from benchmark.data.datasets.folder import read_classes
    from benchmark.exporters.fcclip import folder_metadata, synonym_sets_differ

    metadata = folder_metadata(read_classes(folder))
    assert metadata["stuff_classes"] == ["sky, clouds", "grass, lawn", "ball", "box, crate", "dog"]
    assert metadata["thing_dataset_id_to_contiguous_id"] == {2: 2, 3: 3, 4: 4}
    assert synonym_sets_differ([c["synonyms"] if "synonyms" in c else [c["name"]] for c in CLASSES],
                               metadata["stuff_classes"]) == []


# ---------------------------------------------------------------------------------------------- bad inputs
def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def _label_id_missing(root: Path) -> str:
    path = root / "labels" / "train" / "train_003.png"
    labels = np.asarray(Image.open(path)).copy()
    labels[5, 5] = 7
    Image.fromarray(labels).save(path)
    return f"{path}: label id 7 is not in classes.yaml"


def _image_without_label(root: Path) -> str:
    (root / "labels" / "val" / "val_002.png").unlink()
    return f"{root / 'images' / 'val' / 'val_002.jpg'}: no label map"


def _label_without_image(root: Path) -> str:
    (root / "images" / "train" / "train_001.png").unlink()
    return f"{root / 'labels' / 'train' / 'train_001.png'}: no image"


def _size_mismatch(root: Path) -> str:
    path = root / "labels" / "val" / "val_001.png"
    Image.open(path).resize((30, 24), Image.NEAREST).save(path)
    return f"{path} is 30x24 but its image {root / 'images' / 'val' / 'val_001.png'} is 32x24"


def _duplicate_class_id(root: Path) -> str:
    (root / "classes.yaml").write_text(yaml.safe_dump(CLASSES + [{"id": 3, "name": "crate"}]))
    return f"{root / 'classes.yaml'}: id 3 is listed twice"


def _duplicate_image_id(root: Path) -> str:
    shutil.copy(root / "images" / "train" / "train_000.jpg", root / "images" / "train" / "train_000.png")
    return f"{root / 'images' / 'train' / 'train_000.png'}: same image id 'train_000'"


def _class_ids_not_contiguous(root: Path) -> str:
    (root / "classes.yaml").write_text(yaml.safe_dump([{**c, "id": c["id"] * 2} for c in CLASSES]))
    return "ids must be 0..4"


def _panoptic_category_unknown(root: Path) -> str:
    path = root / "panoptic" / "train.json"
    data = json.loads(path.read_text())
    data["annotations"][2]["segments_info"][0]["category_id"] = 9
    path.write_text(json.dumps(data))
    return f"{path}: segment 1 of train_002.png has unknown category_id 9"


def _image_without_panoptic(root: Path) -> str:
    path = root / "panoptic" / "val.json"
    data = json.loads(path.read_text())
    data["annotations"] = data["annotations"][1:]
    path.write_text(json.dumps(data))
    return f"{root / 'images' / 'val' / 'val_000.jpg'}: no panoptic annotation in {path}"


def _no_classes_file(root: Path) -> str:
    (root / "classes.yaml").unlink()
    return f"{root / 'classes.yaml'} not found"


BAD_INPUTS = [_label_id_missing, _image_without_label, _label_without_image, _size_mismatch, _duplicate_class_id,
              _duplicate_image_id, _class_ids_not_contiguous, _panoptic_category_unknown, _image_without_panoptic,
              _no_classes_file]


@pytest.mark.parametrize("spoil", BAD_INPUTS, ids=lambda f: f.__name__.strip("_"))
def test_each_bad_input_is_one_line_exit_2_nothing_written(folder, tmp_path, capsys, spoil):
    root = shutil.copytree(folder, tmp_path / "bad")
    expected = spoil(root)
    before = tree(root)
    capsys.readouterr()
    assert main(["prepare", "folder", "--root", str(root), "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ") and expected in err, err
    assert tree(root) == before


def test_check_is_required(folder, capsys):
    assert main(["prepare", "folder", "--root", str(folder)]) == 2
    assert "add --check" in capsys.readouterr().err
