"""`python -m benchmark show RUN_DIR --images N [--steps ...] --out DIR`: predictions to look at.

For the first N validation images of a run's stream, one PNG per image: the image, its ground truth and the
prediction after each chosen step, drawn as colour overlays with a legend of the classes in view (as
detectron2's `Visualizer` and mmsegmentation's `--show-dir` draw them). Predictions are made again, by the run's
method restored from what the run folder holds, where the run kept it (a worker process for isolate=true):

- `initial`: the untouched method (what the initial evaluation scored, every class), always available;
- step t: the method restored from the run's checkpoint. A run keeps ONE checkpoint, the last completed step's
  (`checkpoint.pt`, replaced after every step), so only that step can be drawn; asking for another says so;
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

OVERLAY_ALPHA = 0.6  # colour over image; high enough to read the classes, low enough to see the image below


def class_colour(class_id: int) -> tuple[float, float, float]:
    """A fixed RGB colour (0..1) per class id, the same in every figure: hues stepped by the golden ratio, with
    three saturation / value levels so that neighbouring ids and ids far apart (847 classes) stay distinct."""
    hue = (class_id * 0.618033988749895) % 1.0
    saturation, value = ((0.85, 0.95), (0.55, 0.85), (0.95, 0.65))[class_id % 3]
    return colorsys.hsv_to_rgb(hue, saturation, value)


def overlay(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """`image` (H, W, 3 uint8) with every labelled pixel blended towards its class colour; IGNORE_LABEL
    pixels keep the image (dimmed, so that unlabelled reads apart from labelled)."""
    out = image.astype(np.float32) / 255.0
    labelled = labels != IGNORE_LABEL
    ids = np.unique(labels[labelled])
    palette = np.array([class_colour(int(c)) for c in ids], dtype=np.float32).reshape(-1, 3)
    colours = palette[np.searchsorted(ids, labels[labelled])]
    out[labelled] = (1 - OVERLAY_ALPHA) * out[labelled] + OVERLAY_ALPHA * colours
    out[~labelled] *= 0.5
    edges = np.zeros(labels.shape, dtype=bool)  # class borders, drawn white: regions of similar colour stay apart
    edges[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edges[1:, :] |= labels[1:, :] != labels[:-1, :]
    out[edges & labelled] = 1.0
    return out


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


def predictions(cfg, manifest: dict, run_dir: Path, steps: list[int], samples: list, full: Vocabulary,
                exported: Path | None) -> list[tuple[str, Vocabulary, list[np.ndarray]]]:
    """(column title, vocabulary, one label map per sample) for every chosen step, then the exported column.
    The run's method is restored by a host made from the run's own config (benchmark.hosts): an isolated run's
    method and checkpoint go to a worker process, as in the run."""
    from benchmark.run.checkpoint import load_checkpoint
    from benchmark.data.types import ImageInput
    from benchmark.hosts import make_host
    from benchmark.runner import ground_truth_access, seed_everything

    oracle = ground_truth_access(cfg) == "oracle_proposals"
    inputs = [ImageInput.of(s, panoptic=False, oracle=oracle) for s in samples]
    checkpoint = load_checkpoint(run_dir) if any(t >= 0 for t in steps) else None
    seed_everything(cfg.seed)  # the method is built as the run built it (random heads are drawn from the seed)
    host = make_host(cfg, len(full), device="cpu")
    predicted = {}
    try:
        for step in sorted(steps):  # the untouched method first, then restored from the checkpoint
            if step >= 0:
                host.load_state_dict(checkpoint["method"])
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


def draw(sample, columns: list[tuple[str, Vocabulary, list[np.ndarray]]], index: int, vocabulary: Vocabulary,
         path: Path) -> None:
    """One figure: image, ground truth, one panel per column; legend of every class drawn, below the panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from benchmark.method import filter_sample

    names = {c.id: c.name for c in vocabulary.classes}
    panels = [("image", sample.image), ("ground truth", overlay(sample.image, sample.sem_seg))]
    shown = set(np.unique(sample.sem_seg).tolist())
    for title, vocab, labels in columns:
        prediction = labels[index]
        gt = filter_sample(sample, vocab.ids).sem_seg
        scored = gt != IGNORE_LABEL
        accuracy = 100.0 * float((prediction[scored] == gt[scored]).mean()) if scored.any() else float("nan")
        panels.append((f"{title}\n{len(vocab)} classes, pixel acc. {accuracy:.1f}%", overlay(sample.image, prediction)))
        shown |= set(np.unique(prediction).tolist())
    shown.discard(IGNORE_LABEL)
    height, width = sample.sem_seg.shape
    figure, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2 * height / width + 0.8),
                                squeeze=False, layout="constrained")
    for axis, (title, picture) in zip(axes[0], panels):
        axis.imshow(picture)
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    figure.suptitle(f"{sample.image_id}", fontsize=10)
    handles = [Patch(facecolor=class_colour(c), label=names.get(c, f"class {c}")) for c in sorted(shown)]
    figure.legend(handles=handles, loc="outside lower center", ncol=min(2 * len(panels), max(1, len(handles))),
                  fontsize=8, frameon=False)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark show", description=" ".join(__doc__.split("\n\n")[1].split()))
    parser.add_argument("run_dir", type=Path, help="a run folder (results/<stream>/<method>/<run-id>)")
    parser.add_argument("--images", type=int, default=4, help="the first N validation images (default 4)")
    parser.add_argument("--steps", default=None,
                        help="comma-separated: step numbers, 'initial', 'last' (default: initial,last)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs (created)")
    parser.add_argument("--predictions", type=Path, default=None,
                        help="a folder of exported predictions (export-predictions): one more column")
    args = parser.parse_args(argv)
    if args.images < 1:
        raise UserError(f"--images {args.images}: must be at least 1")
    if args.predictions is not None and not (args.predictions / "meta.json").is_file():
        raise UserError(f"--predictions {args.predictions}: no meta.json there (not an export-predictions folder)")
    run_dir = args.run_dir
    cfg, manifest = read_run(run_dir)
    from benchmark.run.checkpoint import CHECKPOINT_FILE, load_checkpoint

    checkpoint = load_checkpoint(run_dir)
    last = None if checkpoint is None else int(checkpoint["completed_step"])
    steps = parse_steps(args.steps or ("initial,last" if last is not None else "initial"), last)
    unavailable = [t for t in steps if t >= 0 and t != last]
    if unavailable:
        kept = f"step {last}'s" if last is not None else "no"
        raise UserError(f"{run_dir} keeps {kept} checkpoint ({CHECKPOINT_FILE} is replaced after every step), so "
                        f"step(s) {', '.join(map(str, unavailable))} cannot be drawn; choose from: initial"
                        f"{', ' + str(last) if last is not None else ''}")
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
        draw(sample, columns, index, val.vocabulary, out / f"{sample.image_id.replace('/', '__')}.png")
    print(f"wrote {len(samples)} figure(s) to {out} (columns: image, ground truth, "
          f"{', '.join(title for title, _, _ in columns)})")
    return 0
