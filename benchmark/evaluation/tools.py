"""Drop-in evaluators for users who only want the numbers: `python -m benchmark pq ...` / `miou ...`.

`pq` takes the inputs of panopticapi's `pq_compute` (COCO panoptic JSON + PNG folder, for ground truth and
prediction) and prints its table, or with `--json` its result structure (All / Things / Stuff each with pq,
sq, rq as fractions and n, plus per_class keyed by the JSON's category ids). `miou` pairs label maps of two
folders by file stem (.png / .tif) and prints miou, per_class_iou, pacc, macc, fwiou in percent.
Inputs the user can fix raise UserError / DataError with one line naming the file.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np

from benchmark.data.readers import read_panoptic_ids, read_raw_label_map
from benchmark.data.types import IGNORE_LABEL, SegmentInfo
from benchmark.errors import DataError, UserError
from benchmark.evaluation.panoptic import PanopticEvaluator
from benchmark.evaluation.semantic import MIOU_MODES, LabelError, SemanticEvaluator

LABEL_EXTENSIONS = (".png", ".tif", ".tiff")


def _without_nan(value: object) -> object:
    """NaN -> None, so `--json` prints valid JSON (null) for undefined numbers."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    return value


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"JSON file missing: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} holds a JSON {type(data).__name__}, not an object with 'annotations' "
                        f"(COCO panoptic format)")
    return data


def _list_of_objects(value: object, path: Path, what: str) -> list[dict]:
    if not isinstance(value, list):
        raise DataError(f"{path}: {what} is a {type(value).__name__}, not a list")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise DataError(f"{path}: {what}[{i}] is a {type(item).__name__}, not an object")
    return value


def _annotations(data: dict, path: Path) -> list[dict]:
    """The 'annotations' of a COCO panoptic JSON, each checked for the keys pq_compute reads."""
    annotations = _list_of_objects(data.get("annotations", []), path, "'annotations'")
    for i, ann in enumerate(annotations):
        if "image_id" not in ann:
            raise DataError(f"{path}: annotation {i} has no 'image_id'")
        if "file_name" not in ann:
            raise DataError(f"{path}: annotation {i} (image_id {ann['image_id']}) has no 'file_name'")
        segments = _list_of_objects(ann.get("segments_info", []), path,
                                    f"'segments_info' of image_id {ann['image_id']}")
        for j, seg in enumerate(segments):
            for key in ("id", "category_id"):
                if key not in seg:
                    raise DataError(f"{path}: segment {j} of image_id {ann['image_id']} ({ann['file_name']}) "
                                    f"has no '{key}'")
    return annotations


def _require_dir(path: Path, what: str) -> Path:
    if not Path(path).is_dir():
        raise UserError(f"{what} folder missing: {path}")
    return Path(path)


def _segments(annotation: dict, contiguous: dict[int, int], isthing: list[bool], json_path: Path) -> list[SegmentInfo]:
    segments = []
    for seg in annotation.get("segments_info", []):
        if seg["category_id"] not in contiguous:
            raise DataError(f"{json_path}: segment {seg['id']} of {annotation['file_name']} has unknown category_id "
                            f"{seg['category_id']}")
        category = contiguous[seg["category_id"]]
        segments.append(SegmentInfo(int(seg["id"]), category, bool(seg.get("iscrowd", 0)), isthing[category]))
    return segments


def pq_compute(gt_json_file: Path, pred_json_file: Path, gt_folder: Path, pred_folder: Path) -> dict:
    """panopticapi `pq_compute` on files (same arguments, same result structure), with our evaluator."""
    gt_json, pred_json = _load_json(gt_json_file), _load_json(pred_json_file)
    gt_folder, pred_folder = _require_dir(gt_folder, "ground-truth PNG"), _require_dir(pred_folder, "prediction PNG")
    if not gt_json.get("categories"):
        raise DataError(f"{gt_json_file} has no 'categories' list")
    categories = _list_of_objects(gt_json["categories"], gt_json_file, "'categories'")
    for i, c in enumerate(categories):
        if "id" not in c:
            raise DataError(f"{gt_json_file}: category {i} has no 'id'")
    category_ids = [c["id"] for c in categories]
    contiguous = {category_id: i for i, category_id in enumerate(category_ids)}
    isthing = [c.get("isthing", 0) == 1 for c in categories]
    gt_annotations = _annotations(gt_json, gt_json_file)
    pred_annotations = {a["image_id"]: a for a in _annotations(pred_json, pred_json_file)}
    evaluator = PanopticEvaluator(isthing)
    for gt_ann in gt_annotations:
        pred_ann = pred_annotations.get(gt_ann["image_id"])
        if pred_ann is None:
            raise DataError(f"{pred_json_file} has no prediction for image_id {gt_ann['image_id']} "
                            f"({gt_ann['file_name']})")
        gt_png, pred_png = gt_folder / gt_ann["file_name"], pred_folder / pred_ann["file_name"]
        gt_pan, pred_pan = read_panoptic_ids(gt_png), read_panoptic_ids(pred_png)
        if gt_pan.shape != pred_pan.shape:
            raise DataError(f"{pred_png} is {pred_pan.shape[1]}x{pred_pan.shape[0]} but {gt_png} is "
                            f"{gt_pan.shape[1]}x{gt_pan.shape[0]}")
        gt_segments = _segments(gt_ann, contiguous, isthing, gt_json_file)
        pred_segments = _segments(pred_ann, contiguous, isthing, pred_json_file)
        try:
            evaluator.process(pred_pan, pred_segments, gt_pan, gt_segments, require_pixels=True)
        except ValueError as exc:
            raise DataError(f"{pred_png} / {gt_png}: {exc}") from None
    results = evaluator.evaluate()
    results["per_class"] = {category_ids[c]: values for c, values in results["per_class"].items()}
    return results


def pq_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark pq", description="Panoptic quality as panopticapi.")
    parser.add_argument("--gt-json", type=Path, required=True, help="COCO panoptic ground-truth JSON")
    parser.add_argument("--gt-folder", type=Path, help="ground-truth PNGs (default: the JSON path without .json)")
    parser.add_argument("--pred-json", type=Path, required=True, help="COCO panoptic prediction JSON")
    parser.add_argument("--pred-folder", type=Path, help="predicted PNGs (default: the JSON path without .json)")
    parser.add_argument("--json", action="store_true", help="print panopticapi's result structure as JSON")
    args = parser.parse_args(argv)
    results = pq_compute(args.gt_json, args.pred_json, args.gt_folder or args.gt_json.with_suffix(""),
                         args.pred_folder or args.pred_json.with_suffix(""))
    if args.json:
        print(json.dumps(_without_nan(results)))
        return 0
    print(f"{'':10s}| {'PQ':>5s}  {'SQ':>5s}  {'RQ':>5s} {'N':>5s}")
    print("-" * 38)
    for name in ("All", "Things", "Stuff"):
        r = results[name]
        print(f"{name:10s}| {100 * r['pq']:5.1f}  {100 * r['sq']:5.1f}  {100 * r['rq']:5.1f} {r['n']:5d}")
    return 0


def _label_files(folder: Path, what: str) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(_require_dir(folder, what).iterdir()):
        if path.suffix.lower() in LABEL_EXTENSIONS:
            if path.stem in files:
                raise UserError(f"{what} folder holds two label maps for '{path.stem}': {files[path.stem]} and {path}")
            files[path.stem] = path
    return files


def _available_memory() -> int | None:
    """Bytes of memory available now (MemAvailable of /proc/meminfo, else the physical memory); None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_num_classes(num_classes: int, key: str = "--num-classes") -> None:
    """Refuse class counts that are not positive, or whose int64 confusion matrix (num_classes^2 * 8 bytes)
    would take more than half of the available memory (the evaluator needs about twice the matrix)."""
    if num_classes < 1:
        raise UserError(f"{key} must be positive, got {num_classes}")
    needed, available = num_classes * num_classes * 8, _available_memory()
    if available is not None and needed > available // 2:
        raise UserError(f"{key} {num_classes} needs a {needed / 2**30:.1f} GiB confusion matrix "
                        f"(num_classes^2 int64), more than half of the {available / 2**30:.1f} GiB memory available")


def miou_compute(gt_dir: Path, pred_dir: Path, num_classes: int, ignore_index: int = IGNORE_LABEL,
                 miou_mode: str = "present") -> dict:
    """Semantic metrics (percent) of the label maps in `pred_dir` against those in `gt_dir`, paired by stem."""
    gt_files, pred_files = _label_files(gt_dir, "ground-truth"), _label_files(pred_dir, "prediction")
    unpaired = sorted(set(gt_files) ^ set(pred_files))
    if unpaired:
        stem = unpaired[0]
        present, missing = (gt_files[stem], pred_dir) if stem in gt_files else (pred_files[stem], gt_dir)
        raise UserError(f"{present} has no label map with the same stem in {missing} "
                        f"({len(unpaired)} unpaired file(s))")
    if not gt_files:
        raise UserError(f"no label maps ({', '.join(LABEL_EXTENSIONS)}) in {gt_dir}")
    evaluator = SemanticEvaluator(num_classes, ignore_index, miou_mode)  # type: ignore[arg-type]
    for stem, gt_path in gt_files.items():
        pred_path = pred_files[stem]
        gt, pred = read_raw_label_map(gt_path), read_raw_label_map(pred_path)  # file dtypes: the evaluator widens
        if gt.shape != pred.shape:
            raise DataError(f"{pred_path} is {pred.shape[1]}x{pred.shape[0]} but {gt_path} is "
                            f"{gt.shape[1]}x{gt.shape[0]}")
        try:
            evaluator.process(pred, gt)  # checks both maps; the message says which one is wrong
        except LabelError as exc:
            raise DataError(f"{pred_path if exc.in_prediction else gt_path}: {exc}") from None
    return evaluator.evaluate()


def miou_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark miou", description="mIoU, pAcc, mAcc, fwIoU.")
    parser.add_argument("--gt-dir", type=Path, required=True, help="ground-truth label maps (.png / .tif)")
    parser.add_argument("--pred-dir", type=Path, required=True, help="predicted label maps, same stems")
    parser.add_argument("--num-classes", type=int, required=True)
    parser.add_argument("--ignore-index", type=int, default=IGNORE_LABEL)
    parser.add_argument("--mode", choices=MIOU_MODES, default="present",
                        help="present: mean over classes with ground truth; legacy: detectron2 v0.6")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = parser.parse_args(argv)
    check_num_classes(args.num_classes)
    results = miou_compute(args.gt_dir, args.pred_dir, args.num_classes, args.ignore_index, args.mode)
    if args.json:
        print(json.dumps(_without_nan(results)))
        return 0
    for key in ("miou", "pacc", "macc", "fwiou"):
        print(f"{key:6s} {results[key]:6.2f}")
    present = [(c, v) for c, v in enumerate(results["per_class_iou"]) if not np.isnan(v)]
    print("per-class IoU (classes with ground truth): " + ", ".join(f"{c}: {v:.2f}" for c, v in present))
    return 0
