"""`python -m benchmark show RUN_DIR --out DIR [--images N] [--steps ...]`: predictions to look at.

For the first N validation images of a run's stream, one figure per image (PNG, or PDF with --format pdf): the
image, its ground truth and the prediction after each chosen step, drawn as colour overlays (detectron2's
`Visualizer` style: one fixed colour per class, `--opacity`) with each class's name written inside its large
regions. Predictions are made again, by the run's method restored from what the run folder holds, where the run
kept it (a worker process for isolate=true):

- `initial`: the untouched method (what the initial evaluation scored, every class), always available;
- step t: the method restored from step t's checkpoint. A run made with checkpoint.keep=all keeps every step's
  (`checkpoints/step_NNN/`); by default (checkpoint.keep=last) a run keeps only the last completed step's
  (`checkpoint.pt`), and asking for another step says so;
- `--predictions DIR`: one more column, the base model's exported predictions (`export-predictions`, or FC-CLIP's
  exporter) read with `model=cached` and classified zero-shot over the same vocabulary as the last chosen step.

Each prediction uses the vocabulary the run evaluated that step with (S_t, or every class with
eval.vocabulary=all); pixels whose ground truth lies outside it are not scored, and the panel's title gives the
pixel accuracy over the scored pixels. Nothing is written to the run folder.
"""
from __future__ import annotations

import argparse
import colorsys
import json
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from benchmark.data.types import IGNORE_LABEL, Vocabulary
from benchmark.errors import UserError

OVERLAY_ALPHA = 0.6  # default --opacity: high enough to read the classes, low enough to see the image below
LABEL_MIN_AREA = 0.01  # a class's largest region gets its name when it covers this share of the image ...
LABEL_LARGE_AREA = 0.08  # ... and each of its other regions when it covers this much (detectron2: > 120000 px)
LABEL_FONT_SIZE = 7  # points; panels are 3.2 inches wide
FORMATS = ("png", "pdf")


def class_colour(class_id: int) -> tuple[float, float, float]:
    """A fixed RGB colour (0..1) per class id, the same in every figure: hues stepped by the golden ratio, with
    three saturation / value levels so that neighbouring ids and ids far apart (847 classes) stay distinct."""
    hue = (class_id * 0.618033988749895) % 1.0
    saturation, value = ((0.85, 0.95), (0.55, 0.85), (0.95, 0.65))[class_id % 3]
    return colorsys.hsv_to_rgb(hue, saturation, value)


def overlay(image: np.ndarray, labels: np.ndarray, opacity: float = OVERLAY_ALPHA) -> np.ndarray:
    """`image` (H, W, 3 uint8) with every labelled pixel blended towards its class colour (`opacity` 0: the
    image, 1: the colour); IGNORE_LABEL pixels keep the image (dimmed, so that unlabelled reads apart from
    labelled)."""
    out = image.astype(np.float32) / 255.0
    labelled = labels != IGNORE_LABEL
    ids = np.unique(labels[labelled])
    palette = np.array([class_colour(int(c)) for c in ids], dtype=np.float32).reshape(-1, 3)
    colours = palette[np.searchsorted(ids, labels[labelled])]
    out[labelled] = (1 - opacity) * out[labelled] + opacity * colours
    out[~labelled] *= 0.5
    edges = np.zeros(labels.shape, dtype=bool)  # class borders, drawn white: regions of similar colour stay apart
    edges[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edges[1:, :] |= labels[1:, :] != labels[:-1, :]
    out[edges & labelled] = 1.0
    return out


def label_points(labels: np.ndarray) -> list[tuple[float, float, int, int]]:
    """(x, y, class id, region area) of every region worth its class's name, largest first: per class its
    largest connected (8-neighbour) region covering LABEL_MIN_AREA of the image, and every other one covering
    LABEL_LARGE_AREA (detectron2's `_draw_text_in_mask` picks regions so). The point lies well inside: among the
    pixels at least 0.7 x the region's largest distance from its border (distance transform; the image edge counts
    as a border), the one nearest the region's centroid, so that it never falls outside a ring- or C-shaped
    region as detectron2's median point can."""
    from scipy import ndimage

    points = []
    for class_id in np.unique(labels[labels != IGNORE_LABEL]):
        regions, _ = ndimage.label(labels == class_id, structure=np.ones((3, 3), dtype=bool))
        areas = np.bincount(regions.ravel())[1:]  # (regions,)
        for index, box in enumerate(ndimage.find_objects(regions)):
            area = int(areas[index])
            needed = LABEL_MIN_AREA if index == areas.argmax() else LABEL_LARGE_AREA
            if area < needed * labels.size:
                continue
            distance = ndimage.distance_transform_edt(np.pad(regions[box] == index + 1, 1))[1:-1, 1:-1]
            ys, xs = np.nonzero(distance >= 0.7 * distance.max())
            centre_y, centre_x = np.argwhere(regions[box] == index + 1).mean(axis=0)
            nearest = np.argmin((ys - centre_y) ** 2 + (xs - centre_x) ** 2)
            points.append((box[1].start + float(xs[nearest]), box[0].start + float(ys[nearest]), int(class_id), area))
    return sorted(points, key=lambda point: -point[3])


def write_names(figure, axis, labels: np.ndarray, names: dict[int, str]) -> int:
    """Each labelled region's class name at its `label_points` point, in white on a dark box, largest regions
    first; a name that sticks out of the panel a little is moved back inside, and a name is left out where it
    would cover one already written or be moved far from its region. Call it once the figure's layout is done
    (the boxes are measured). Returns how many names were written."""
    renderer = figure.canvas.get_renderer()
    frame = axis.get_window_extent(renderer)
    placed = []
    for x, y, class_id, _ in label_points(labels):
        text = axis.text(x, y, names.get(class_id, f"class {class_id}"), ha="center", va="center",
                         fontsize=LABEL_FONT_SIZE, color="white", in_layout=False, zorder=5,
                         bbox={"boxstyle": "round,pad=0.25", "facecolor": "black", "alpha": 0.65, "linewidth": 0})
        pad = 0.3 * LABEL_FONT_SIZE * figure.dpi / 72  # the box around the text, in display pixels
        box = text.get_window_extent(renderer).padded(pad)
        shift = (max(frame.x0 - box.x0, 0) - max(box.x1 - frame.x1, 0),  # back inside the panel
                 max(frame.y0 - box.y0, 0) - max(box.y1 - frame.y1, 0))
        if any(shift):
            text.set_position(axis.transData.inverted().transform(axis.transData.transform((x, y)) + shift))
            box = box.translated(*shift)
        far = max(map(abs, shift)) > box.height  # moved that far, it would seem to name a neighbour
        if far or any(box.overlaps(other) for other in placed):
            text.remove()
            continue
        placed.append(box)
    return len(placed)


def parse_steps(text: str, last: int | None) -> list[int]:
    """`--steps initial,3,last` -> [-1, 3, last]; -1 is the initial (untouched) method."""
    steps = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        if item == "initial":
            steps.append(-1)
        elif item == "last":
            if last is None:
                raise UserError("--steps last: the run has no checkpoint (no step completed)")
            steps.append(last)
        elif item.isdigit():
            steps.append(int(item))
        else:
            raise UserError(f"--steps {text}: '{item}' is not a step number, 'initial' or 'last'")
    return list(dict.fromkeys(steps))


def read_run(run_dir: Path) -> tuple[object, dict]:
    """The run's validated config and its manifest."""
    from benchmark.config import validate

    for name in ("config.yaml", "manifest.json"):
        if not (run_dir / name).is_file():
            raise UserError(f"{run_dir} is not a run folder (no {name})")
    cfg = validate(OmegaConf.load(run_dir / "config.yaml"))
    return cfg, json.loads((run_dir / "manifest.json").read_text())


def step_vocabulary(cfg, manifest: dict, full: Vocabulary, step: int) -> Vocabulary:
    """The classes the run segmented with after `step` (every class for the initial evaluation)."""
    if step < 0 or cfg.eval.vocabulary == "all":
        return full
    return full.subset(sorted({c for classes in manifest["step_classes"][:step + 1] for c in classes}))


def kept_checkpoints(run_dir: Path) -> dict[int, Path]:
    """Step -> the folder holding its checkpoint: every completed step of a run made with checkpoint.keep=all,
    else only the last completed step's (its checkpoint.pt); {} before a step completed."""
    from benchmark.run.checkpoint import checkpoint_step, kept_steps

    kept = kept_steps(run_dir)
    if kept:
        return kept
    step = checkpoint_step(run_dir)
    return {} if step is None else {step: Path(run_dir)}


def check_steps(run_dir: Path, cfg, steps: list[int], kept: dict[int, Path]) -> None:
    """One line for the chosen steps whose checkpoint the run folder does not hold, naming what it does hold and
    the setting that keeps every step's."""
    missing = [step for step in steps if step >= 0 and step not in kept]
    if not missing:
        return
    holds = f"the checkpoint(s) of step(s) {', '.join(map(str, kept))}" if kept else "no checkpoint (no step completed)"
    hint = "; runs made with checkpoint.keep=all keep every step's" if cfg.checkpoint.keep != "all" else ""
    raise UserError(f"{run_dir} holds {holds} (checkpoint.keep={cfg.checkpoint.keep}), so step(s) "
                    f"{', '.join(map(str, missing))} cannot be drawn; choose from: "
                    f"{', '.join(['initial', *map(str, kept)])}{hint}")


def predictions(cfg, manifest: dict, run_dir: Path, steps: list[int], samples: list, full: Vocabulary,
                exported: Path | None) -> list[tuple[str, Vocabulary, list[np.ndarray]]]:
    """(column title, vocabulary, one label map per sample) for every chosen step, then the exported column.
    The run's method is restored by a host made from the run's own config (benchmark.hosts): an isolated run's
    method and checkpoints go to a worker process, as in the run."""
    from benchmark.data.types import ImageInput
    from benchmark.hosts import make_host
    from benchmark.run.checkpoint import load_checkpoint
    from benchmark.runner import ground_truth_access, seed_everything

    kept = kept_checkpoints(run_dir) if any(t >= 0 for t in steps) else {}
    check_steps(run_dir, cfg, steps, kept)
    oracle = ground_truth_access(cfg) == "oracle_proposals"
    inputs = [ImageInput.of(s, panoptic=False, oracle=oracle) for s in samples]
    seed_everything(cfg.seed)  # the method is built as the run built it (random heads are drawn from the seed)
    host = make_host(cfg, len(full), device="cpu")
    predicted = {}
    try:
        for step in sorted(steps):  # the untouched method first, then restored from each step's checkpoint
            if step >= 0:
                host.load_state_dict(load_checkpoint(kept[step])["method"])
            vocab = step_vocabulary(cfg, manifest, full, step)
            predicted[step] = (vocab, [o.sem_seg for o in host.predict(inputs, vocab)])
    finally:
        host.close()
    columns = [("initial (untouched)" if step < 0 else f"after step {step}", *predicted[step]) for step in steps]
    if exported is not None:
        columns.append(exported_column(cfg, exported, inputs, full, columns[-1][1] if columns else full))
    return columns


def exported_column(cfg, exported: Path, inputs: list, full: Vocabulary,
                    vocab: Vocabulary) -> tuple[str, Vocabulary, list[np.ndarray]]:
    """The base model's exported predictions (read with `model=cached`) classified zero-shot over `vocab`."""
    from benchmark.hosts.build import build_method

    model = OmegaConf.merge(cfg.model, {"kind": "cached", "name": "cached", "predictions_dir": str(exported)})
    zero_shot = build_method(OmegaConf.create({"method": {"name": "zeroshot"}, "model": model, "seed": cfg.seed}),
                             len(full))
    outputs = zero_shot.predict(inputs, vocab)
    return f"exported, zero-shot ({exported.name})", vocab, [o.sem_seg for o in outputs]


def build_figure(sample, columns: list[tuple[str, Vocabulary, list[np.ndarray]]], index: int,
                 vocabulary: Vocabulary, opacity: float = OVERLAY_ALPHA, dpi: int = 110):
    """One figure (matplotlib Figure): the image, its ground truth and one panel per column, side by side, each
    class's name written inside its large regions (`write_names`) instead of a legend of colours."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from benchmark.method import filter_sample

    panels = [("image", sample.image, None), ("ground truth", overlay(sample.image, sample.sem_seg, opacity),
                                              sample.sem_seg)]
    for title, vocab, labels in columns:
        prediction = labels[index]
        gt = filter_sample(sample, vocab.ids).sem_seg
        scored = gt != IGNORE_LABEL
        accuracy = 100.0 * float((prediction[scored] == gt[scored]).mean()) if scored.any() else float("nan")
        panels.append((f"{title}\n{len(vocab)} classes, pixel acc. {accuracy:.1f}%",
                       overlay(sample.image, prediction, opacity), prediction))
    height, width = sample.sem_seg.shape
    figure = Figure(figsize=(3.2 * len(panels), 3.2 * height / width + 0.6), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (title, picture, _) in zip(axes, panels):
        axis.imshow(picture)
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    figure.suptitle(f"{sample.image_id}", fontsize=10)
    figure.draw_without_rendering()  # the layout first: names are measured where they will be drawn
    names = {c.id: c.name for c in vocabulary.classes}
    for axis, (_, _, labels) in zip(axes, panels):
        if labels is not None:
            write_names(figure, axis, labels, names)
    return figure


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark show",
                                     description=" ".join(__doc__.split("\n\n")[1].split()))
    parser.add_argument("run_dir", type=Path, help="a run folder (results/<stream>/<method>/<run-id>)")
    parser.add_argument("--images", type=int, default=4, help="the first N validation images (default 4)")
    parser.add_argument("--steps", default=None,
                        help="comma-separated: step numbers, 'initial', 'last' (default: initial,last); a step other "
                             "than the last needs a run made with checkpoint.keep=all")
    parser.add_argument("--out", type=Path, required=True, help="folder for the figures (created)")
    parser.add_argument("--predictions", type=Path, default=None,
                        help="a folder of exported predictions (export-predictions): one more column")
    parser.add_argument("--opacity", type=float, default=OVERLAY_ALPHA,
                        help=f"of the class colours over the image, 0..1 (default {OVERLAY_ALPHA})")
    parser.add_argument("--dpi", type=int, default=110, help="resolution of the figures (default 110)")
    parser.add_argument("--format", choices=FORMATS, default="png", help="png (default) or pdf")
    args = parser.parse_args(argv)
    if args.images < 1:
        raise UserError(f"--images {args.images}: must be at least 1")
    if not 0.0 <= args.opacity <= 1.0:
        raise UserError(f"--opacity {args.opacity:g}: must be between 0 and 1")
    if args.dpi < 1:
        raise UserError(f"--dpi {args.dpi}: must be at least 1")
    if args.predictions is not None and not (args.predictions / "meta.json").is_file():
        raise UserError(f"--predictions {args.predictions}: no meta.json there (not an export-predictions folder)")
    run_dir = args.run_dir
    cfg, manifest = read_run(run_dir)
    kept = kept_checkpoints(run_dir)
    steps = parse_steps(args.steps or ("initial,last" if kept else "initial"), max(kept) if kept else None)
    check_steps(run_dir, cfg, steps, kept)
    from benchmark.config import data_root
    from streams.builder import open_dataset

    val = open_dataset(cfg.stream.dataset, "val", data_root(cfg), cfg.data.demo_seed, demo_scale=cfg.data.demo_scale)
    samples = [val.load(i) for i in range(min(args.images, len(val)))]
    columns = predictions(cfg, manifest, run_dir, steps, samples, val.vocabulary, args.predictions)
    out = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create --out {out} ({exc.strerror or exc})") from None
    for index, sample in enumerate(samples):
        figure = build_figure(sample, columns, index, val.vocabulary, args.opacity, args.dpi)
        figure.savefig(out / f"{sample.image_id.replace('/', '__')}.{args.format}", dpi=args.dpi, bbox_inches="tight")
    print(f"wrote {len(samples)} {args.format.upper()} figure(s) to {out} (columns: image, ground truth, "
          f"{', '.join(title for title, _, _ in columns)})")
    return 0
