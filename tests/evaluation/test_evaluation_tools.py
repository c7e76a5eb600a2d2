"""`miou` and `pq` drop-in tools end to end on temporary folders: JSON output, and one-line errors."""
import json
import shutil

import numpy as np
import pytest
import tifffile
from PIL import Image

from benchmark.data.types import IGNORE_LABEL
from benchmark.errors import UserError
from benchmark.evaluation.semantic import SemanticEvaluator
from benchmark.evaluation.tools import miou_main, pq_main
from benchmark.perf.eval import perturb_panoptic, synthetic_panoptic, write_coco_panoptic
from benchmark.perf.references import panopticapi_pq_compute


def save_label_map(path, labels):
    if path.suffix == ".tif":
        tifffile.imwrite(path, labels.astype(np.uint16))
    else:
        Image.fromarray(labels.astype(np.uint16)).save(path)


@pytest.fixture
def label_folders(tmp_path):
    rng = np.random.default_rng(0)
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir(), pred_dir.mkdir()
    pairs = []
    for i, suffix in enumerate([".png", ".tif", ".png"]):
        gt = rng.integers(0, 5, (12, 16))
        gt[:2] = IGNORE_LABEL
        pred = np.where(rng.random(gt.shape) < 0.7, np.minimum(gt, 4), rng.integers(0, 5, gt.shape))
        save_label_map(gt_dir / f"img{i}{suffix}", gt)
        save_label_map(pred_dir / f"img{i}{suffix}", pred)
        pairs.append((pred, gt))
    return gt_dir, pred_dir, pairs


@pytest.mark.parametrize("mode", ["present", "legacy"])
def test_miou_tool_json(label_folders, capsys, mode):
    gt_dir, pred_dir, pairs = label_folders
    assert miou_main(["--gt-dir", str(gt_dir), "--pred-dir", str(pred_dir), "--num-classes", "6",
                      "--mode", mode, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    evaluator = SemanticEvaluator(6, miou_mode=mode)
    for pred, gt in pairs:
        evaluator.process(pred, gt)
    expected = evaluator.evaluate()
    for key in ("miou", "pacc", "macc", "fwiou"):
        assert printed[key] == pytest.approx(expected[key])
    assert printed["per_class_iou"][:5] == pytest.approx(expected["per_class_iou"][:5])
    assert printed["per_class_iou"][5] is None  # class 5 has no ground truth: NaN becomes null


def test_miou_tool_golden_table(tmp_path, capsys):
    (tmp_path / "gt").mkdir(), (tmp_path / "pred").mkdir()
    save_label_map(tmp_path / "gt" / "a.png", np.array([[0, 0, 1, 1], [2, 255, 255, 1]]))
    save_label_map(tmp_path / "pred" / "a.png", np.array([[0, 3, 1, 1], [1, 3, 3, 1]]))
    miou_main(["--gt-dir", str(tmp_path / "gt"), "--pred-dir", str(tmp_path / "pred"), "--num-classes", "4",
               "--ignore-index", "255"])
    out = capsys.readouterr().out
    assert "miou    41.67" in out and "pacc    66.67" in out


def test_miou_tool_errors(label_folders, tmp_path):
    gt_dir, pred_dir, _ = label_folders
    args = ["--gt-dir", str(gt_dir), "--pred-dir", str(pred_dir), "--num-classes", "6"]
    with pytest.raises(UserError, match="folder missing: .*nowhere"):
        miou_main(["--gt-dir", str(tmp_path / "nowhere"), "--pred-dir", str(pred_dir), "--num-classes", "6"])
    with pytest.raises(UserError, match=r"pred/img0.png: prediction holds class id 4 outside 0..3"):
        miou_main(args[:-1] + ["4"])
    save_label_map(pred_dir / "img1.tif", np.zeros((5, 5)))
    with pytest.raises(UserError, match=r"pred/img1.tif is 5x5 but .*gt/img1.tif is 16x12"):
        miou_main(args)
    (pred_dir / "img1.tif").unlink()
    with pytest.raises(UserError, match=r"gt/img1.tif has no label map with the same stem in .*pred"):
        miou_main(args)
    save_label_map(pred_dir / "img1.tif", np.zeros((12, 16)))
    save_label_map(gt_dir / "img1.tif", np.full((12, 16), 7))
    with pytest.raises(UserError, match=r"gt/img1.tif: ground truth holds label 7"):
        miou_main(args)


@pytest.fixture
def panoptic_folders(tmp_path):
    rng = np.random.default_rng(5)
    isthing = np.arange(10) < 6
    gts, preds = [], []
    for i in range(3):
        gt_pan, gt_segments = synthetic_panoptic(rng, 48, 64, isthing, num_things=10)
        pred_pan, pred_segments = perturb_panoptic(rng, gt_pan, gt_segments, 10)
        gts.append((f"{i:04d}", gt_pan, gt_segments))
        preds.append((f"{i:04d}", pred_pan, pred_segments))
    gt_json, gt_dir = write_coco_panoptic(tmp_path, "gt", gts, isthing)
    pred_json, pred_dir = write_coco_panoptic(tmp_path, "pred", preds, isthing)
    return gt_json, gt_dir, pred_json, pred_dir


def test_pq_tool_json_matches_panopticapi(panoptic_folders, capsys):
    gt_json, gt_dir, pred_json, pred_dir = panoptic_folders
    assert pq_main(["--gt-json", str(gt_json), "--gt-folder", str(gt_dir), "--pred-json", str(pred_json),
                    "--json"]) == 0  # --pred-folder defaults to the JSON path without .json
    printed = json.loads(capsys.readouterr().out)
    reference = panopticapi_pq_compute(gt_json, pred_json, gt_dir, pred_dir)
    for group in ("All", "Things", "Stuff"):
        assert printed[group]["n"] == reference[group]["n"]
        for key in ("pq", "sq", "rq"):
            assert printed[group][key] == pytest.approx(reference[group][key], abs=1e-9)
    for category, values in reference["per_class"].items():  # JSON category ids (contiguous + 1 here)
        assert printed["per_class"][str(category)] == pytest.approx(values, abs=1e-9)
    assert 0 < printed["All"]["pq"] < 1
    pq_main(["--gt-json", str(gt_json), "--pred-json", str(pred_json)])
    assert capsys.readouterr().out.splitlines()[2].startswith("All       |")


def rewrite(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_pq_tool_errors(panoptic_folders):
    gt_json, gt_dir, pred_json, pred_dir = panoptic_folders
    args = ["--gt-json", str(gt_json), "--pred-json", str(pred_json)]
    with pytest.raises(UserError, match="prediction PNG folder missing: .*nowhere"):
        pq_main(args + ["--pred-folder", str(pred_dir.parent / "nowhere")])
    with pytest.raises(UserError, match="JSON file missing: .*absent.json"):
        pq_main(["--gt-json", str(gt_json), "--pred-json", str(pred_json.parent / "absent.json")])

    backup = pred_json.read_text()
    rewrite(pred_json, lambda d: d["annotations"].pop(1))
    with pytest.raises(UserError, match="pred.json has no prediction for image_id 0001"):
        pq_main(args)
    pred_json.write_text(backup)
    rewrite(pred_json, lambda d: d["annotations"][0]["segments_info"].pop(0))
    with pytest.raises(UserError, match=r"0000.png .*segment id \d+ is in the prediction map but not in its segments"):
        pq_main(args)
    pred_json.write_text(backup)
    rewrite(pred_json, lambda d: d["annotations"][2]["segments_info"][0].update(category_id=99))
    with pytest.raises(UserError, match=r"pred.json: segment \d+ of 0002.png has unknown category_id 99"):
        pq_main(args)
    pred_json.write_text(backup)
    rewrite(pred_json, lambda d: d["annotations"][2]["segments_info"].append(
        {"id": 4242, "category_id": 1, "iscrowd": 0}))
    with pytest.raises(UserError, match="segment id 4242 is in the prediction's segments but not in its map"):
        pq_main(args)
    pred_json.write_text(backup)
    shutil.move(pred_dir / "0001.png", pred_dir.parent / "0001.png")
    with pytest.raises(UserError, match="image file missing: .*0001.png"):
        pq_main(args)
    shutil.move(pred_dir.parent / "0001.png", pred_dir / "0001.png")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(pred_dir / "0002.png")
    with pytest.raises(UserError, match=r"pred/0002.png is 10x10 but .*gt/0002.png is 64x48"):
        pq_main(args)
