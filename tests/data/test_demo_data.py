import json

import numpy as np
import pytest
import tifffile

from benchmark.data.demo import demo_dataset, demo_vocabulary, generate_image, _class_textures
from benchmark.data.readers import CocoPanopticFolder, SemSegFolder
from benchmark.data.types import IGNORE_LABEL


def test_generation_is_deterministic_and_seeded():
    recipes = _class_textures(0)
    a, b = generate_image(3, 0, recipes), generate_image(3, 0, recipes)
    assert all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3])) and a[3] == b[3]
    c = generate_image(3, 1, _class_textures(1))
    assert a[0].shape != c[0].shape or not np.array_equal(a[0], c[0])


def test_layout_and_formats_match_the_real_readers(demo_root):
    vocab = demo_vocabulary()
    assert len(vocab) == 40 and sum(c.isthing for c in vocab.classes) == 24
    semantic = demo_dataset(demo_root, "training", panoptic=False)
    panoptic = demo_dataset(demo_root, "training", panoptic=True)
    assert isinstance(semantic, SemSegFolder) and isinstance(panoptic, CocoPanopticFolder)
    assert len(semantic) == 300 and len(demo_dataset(demo_root, "validation", panoptic=False)) == 100
    root = next(demo_root.glob("covseg_demo_*"))
    label_file = next((root / "annotations" / "training").glob("*.tif"))
    assert tifffile.imread(label_file).dtype == np.uint16
    seen_ignore = False
    for i in range(20):
        s, p = semantic[i], panoptic[i]
        assert s.image_id == p.image_id and s.image.dtype == np.uint8 and 128 <= min(s.image.shape[:2]) <= 256
        # the semantic map derived from the COCO-panoptic PNG equals the 16-bit label map
        assert np.array_equal(s.sem_seg, p.sem_seg)
        seen_ignore |= bool((s.sem_seg == IGNORE_LABEL).any())
        for seg in p.segments:  # areas in the JSON are those of the PNG
            assert (p.pan_seg == seg.id).sum() == seg.area and seg.isthing == vocab.classes[seg.category_id].isthing
        things = [seg for seg in p.segments if seg.isthing]
        assert len({seg.id for seg in things}) == len(things)
    assert seen_ignore
    data = json.loads((root / "panoptic_training.json").read_text())
    used = {seg["category_id"] for ann in data["annotations"] for seg in ann["segments_info"]}
    assert used <= {c["id"] for c in data["categories"]}


def test_the_demo_goes_to_the_cache_folder_unless_data_root_is_set(tmp_path, monkeypatch):
    """Generated data is a cache: never into the folder the user runs from ($DETECTRON2_DATASETS is for real data)."""
    from benchmark.config import data_root, load_config

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "real"))
    assert data_root(load_config(["stream=demo_4steps"])) == tmp_path / "cache" / "covseg-bench" / "datasets"
    assert data_root(load_config(["stream=demo_panoptic_4steps"])) == tmp_path / "cache" / "covseg-bench" / "datasets"
    assert data_root(load_config(["stream=demo_4steps", f"data.root={tmp_path / 'mine'}"])) == tmp_path / "mine"
    assert data_root(load_config(["stream=ade847_10steps"])) == tmp_path / "real"


def test_labels_are_not_a_function_of_the_image_id_alone(tmp_path, monkeypatch):
    """A method knowing this module and an image id (hence its index and the default seed) cannot regenerate
    the labels: each data root draws its own secret, stored with the generated dataset."""
    from benchmark.data import demo

    monkeypatch.setattr(demo, "TRAIN_PER_SCALE", 2)
    monkeypatch.setattr(demo, "VAL_PER_SCALE", 1)
    recipes = _class_textures(0)
    public = generate_image(1_000_000, 0, recipes)[1].astype(np.int64)
    labels = []
    for name in ("a", "b"):
        root = demo.ensure_demo_dataset(tmp_path / name, 0)
        sample = demo_dataset(tmp_path / name, "validation", panoptic=False).load(0)
        secret = json.loads((root / "DONE.json").read_text())["secret"]
        assert (tmp_path / name / ".covseg_demo_v1_seed0.secret").read_text().strip() == str(secret)
        assert np.array_equal(sample.sem_seg, generate_image(1_000_000, 0, recipes, secret)[1].astype(np.int64))
        labels.append(sample.sem_seg)
    assert not any(np.array_equal(x, public) for x in labels) and not np.array_equal(*labels)


def test_demo_secret_key_claims_a_fresh_root_and_refuses_one_drawn_otherwise(demo_root, tmp_path):
    """data.demo_secret=0 draws a fresh data root publicly (the README's numbers); a root that already holds
    another secret is refused in one line naming its secret file, before anything is generated or written."""
    from benchmark.config import load_config
    from benchmark.data.demo import claim_demo_secret
    from benchmark.errors import UserError
    from benchmark.runner import run_stream

    claim_demo_secret(tmp_path / "public", 0, 0)
    assert (tmp_path / "public" / ".covseg_demo_v1_seed0.secret").read_text().strip() == "0"
    claim_demo_secret(demo_root, 0, 0)  # the tests' root holds the public draw already: accepted
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / ".covseg_demo_v1_seed0.secret").write_text("12345\n")
    cfg = load_config([f"data.root={tmp_path / 'own'}", "data.demo_secret=0", f"results_dir={tmp_path / 'results'}",
                       "quiet=true"])
    with pytest.raises(UserError, match=r"data.demo_secret=0, but the data root .*own already holds a demo drawn "
                                        r"with another secret \(.*\.covseg_demo_v1_seed0\.secret\)"):
        run_stream(cfg)
    assert not (tmp_path / "results").exists() and sorted(p.name for p in (tmp_path / "own").iterdir()) == [
        ".covseg_demo_v1_seed0.secret"]
