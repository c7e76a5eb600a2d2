"""Bad inputs of the `pq` and `miou` drop-in tools (issue #13): each gives one line on stderr naming the
file / key / id, exit code 2, no traceback and nothing on stdout. The CLI runs in-process (`benchmark.__main__`
is what `python -m benchmark` calls), so a traceback would surface here as an exception."""
import json

import numpy as np
import pytest
from PIL import Image

from benchmark.__main__ import main
from benchmark.perf.eval import perturb_panoptic, synthetic_panoptic, write_coco_panoptic


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, out, err, *names):
    assert code == 2
    assert out == ""  # nothing printed as a result
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture
def panoptic_files(tmp_path):
    rng = np.random.default_rng(3)
    isthing = np.arange(4) < 2
    gts, preds = [], []
    for i in range(2):
        gt_pan, gt_segments = synthetic_panoptic(rng, 32, 48, isthing, num_things=3)
        pred_pan, pred_segments = perturb_panoptic(rng, gt_pan, gt_segments, 4)
        gts.append((f"{i:04d}", gt_pan, gt_segments))
        preds.append((f"{i:04d}", pred_pan, pred_segments))
    gt_json, _ = write_coco_panoptic(tmp_path, "gt", gts, isthing)
    pred_json, _ = write_coco_panoptic(tmp_path, "pred", preds, isthing)
    return gt_json, pred_json


def rewrite(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def pq(capsys, gt_json, pred_json):
    return run_cli(capsys, "pq", "--gt-json", gt_json, "--pred-json", pred_json, "--json")


def test_pq_fixture_is_valid(panoptic_files, capsys):
    code, out, _ = pq(capsys, *panoptic_files)
    assert code == 0 and json.loads(out)["All"]["n"] > 0


@pytest.mark.parametrize("which", ["gt", "pred"])
def test_pq_json_not_an_object(panoptic_files, capsys, which):
    gt_json, pred_json = panoptic_files
    target = gt_json if which == "gt" else pred_json
    target.write_text(json.dumps(json.loads(target.read_text())["annotations"]))  # valid JSON, but a list
    line = assert_one_line_error(*pq(capsys, gt_json, pred_json), target)
    assert "list" in line and "object" in line


@pytest.mark.parametrize("which", ["gt", "pred"])
def test_pq_annotation_without_image_id(panoptic_files, capsys, which):
    gt_json, pred_json = panoptic_files
    target = gt_json if which == "gt" else pred_json
    rewrite(target, lambda d: d["annotations"][1].pop("image_id"))
    assert_one_line_error(*pq(capsys, gt_json, pred_json), target, "annotation 1", "'image_id'")


@pytest.mark.parametrize("which", ["gt", "pred"])
def test_pq_annotation_without_file_name(panoptic_files, capsys, which):
    gt_json, pred_json = panoptic_files
    target = gt_json if which == "gt" else pred_json
    rewrite(target, lambda d: d["annotations"][1].pop("file_name"))
    assert_one_line_error(*pq(capsys, gt_json, pred_json), target, "image_id 0001", "'file_name'")


@pytest.mark.parametrize("which", ["gt", "pred"])
@pytest.mark.parametrize("key", ["id", "category_id"])
def test_pq_segment_without_key(panoptic_files, capsys, which, key):
    gt_json, pred_json = panoptic_files
    target = gt_json if which == "gt" else pred_json
    rewrite(target, lambda d: d["annotations"][0]["segments_info"][1].pop(key))
    assert_one_line_error(*pq(capsys, gt_json, pred_json), target, "segment 1 of image_id 0000", f"'{key}'")


@pytest.mark.parametrize("which", ["gt", "pred"])
def test_pq_duplicate_segment_id_names_the_id(panoptic_files, capsys, which):
    gt_json, pred_json = panoptic_files
    target = gt_json if which == "gt" else pred_json
    first = json.loads(target.read_text())["annotations"][0]["segments_info"][0]
    rewrite(target, lambda d: d["annotations"][0]["segments_info"].append(dict(first)))
    line = assert_one_line_error(*pq(capsys, gt_json, pred_json), "0000.png", f"segment id {first['id']} twice")
    assert ("ground-truth" if which == "gt" else "predicted") in line


@pytest.fixture
def label_dirs(tmp_path):
    (tmp_path / "gt").mkdir(), (tmp_path / "pred").mkdir()
    Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8)).save(tmp_path / "gt" / "a.png")
    Image.fromarray(np.array([[0, 1], [0, 0]], np.uint8)).save(tmp_path / "pred" / "a.png")
    return tmp_path / "gt", tmp_path / "pred"


def miou(capsys, label_dirs, num_classes):
    gt_dir, pred_dir = label_dirs
    return run_cli(capsys, "miou", "--gt-dir", gt_dir, "--pred-dir", pred_dir, "--num-classes", num_classes)


def test_miou_num_classes_too_large_for_memory(label_dirs, capsys, monkeypatch):
    def no_allocation(*args, **kwargs):
        raise AssertionError("allocated before refusing --num-classes")

    monkeypatch.setattr("benchmark.evaluation.tools.SemanticEvaluator", no_allocation)
    line = assert_one_line_error(*miou(capsys, label_dirs, 10**6), "--num-classes", "1000000", "GiB")
    assert "7450.6 GiB" in line  # 10^12 * 8 bytes


def test_miou_num_classes_100000_refused_on_a_small_machine(label_dirs, capsys, monkeypatch):
    monkeypatch.setattr("benchmark.evaluation.tools._available_memory", lambda: 64 * 2**30)
    line = assert_one_line_error(*miou(capsys, label_dirs, 100000), "--num-classes", "100000")
    assert "74.5 GiB" in line and "64.0 GiB" in line


@pytest.mark.parametrize("num_classes", [0, -3])
def test_miou_num_classes_not_positive(label_dirs, capsys, num_classes):
    assert_one_line_error(*miou(capsys, label_dirs, num_classes), "--num-classes", f"got {num_classes}")


def test_miou_reasonable_num_classes_still_runs(label_dirs, capsys):
    code, out, _ = miou(capsys, label_dirs, 2)
    assert code == 0 and "miou" in out
