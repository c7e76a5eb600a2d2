"""Entry points of the core subcommands: run, list, streams."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmark.config import CONFIG_DIR, GROUPS, data_root, group_options, load_config, register_schema, validate
from benchmark.errors import UserError
from benchmark.registry import suggest


def run_main(argv: list[str]) -> int:
    """`run key=value ...`: compose and validate the config, then run the stream.
    `run -m key=a,b ...` (or --multirun): a Hydra sweep, see `multirun`."""
    sweep = [a for a in argv if a not in ("-m", "--multirun")]
    bad = [a for a in sweep if "=" not in a]
    if bad:
        raise UserError(f"run takes key=value overrides, got '{bad[0]}' (e.g. run method=knnclip stream=demo_4steps)")
    if len(sweep) < len(argv):
        return multirun(sweep)
    cfg = load_config(argv)
    from benchmark.runner import run_stream

    run_stream(cfg)
    return 0


def multirun(overrides: list[str]) -> int:
    """A Hydra multirun: one job per combination of the comma-separated values (`method=knnclip,zeroshot
    seed=0,1` -> 4 jobs), each a full run with its own run folder. Jobs run one after the other (basic
    launcher), or through `hydra/launcher=joblib` (local processes) or a submitit launcher (SLURM). Every
    combination is validated before the first job starts, so a typo fails in one line, not after hours."""
    import hydra
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    config_overrides = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    try:
        parsed = OverridesParser.create().parse_overrides(config_overrides)
    except Exception as exc:  # hydra's OverrideParseException
        raise UserError(f"invalid sweep override: {str(exc).splitlines()[0]}") from None
    for batch in BasicSweeper.split_arguments(parsed, None):
        for job_overrides in batch:
            load_config(job_overrides)
    register_schema()

    @hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base=None)
    def run_job(cfg) -> None:
        from benchmark.runner import run_stream

        run_stream(validate(cfg))

    saved_argv = sys.argv
    sys.argv = [saved_argv[0], "--multirun", *overrides]  # hydra.main reads its overrides from sys.argv
    try:
        run_job()
    finally:
        sys.argv = saved_argv
    return 0


def list_main(argv: list[str]) -> int:
    """`list [methods|streams|models|...]`: registered methods and config options of each group."""
    from benchmark.method import METHODS
    import benchmark.plugins  # noqa: F401

    what = argv[0] if argv else None
    kinds = {"methods": METHODS.names(), "streams": group_options("stream"), "models": group_options("model"),
             "data": group_options("data"), "loggers": group_options("logger")}
    if what is not None and what not in kinds:
        raise UserError(f"cannot list '{what}'{suggest(what, list(kinds))}; choose from: {', '.join(kinds)}")
    for kind, names in kinds.items():
        if what in (None, kind):
            print(f"{kind}: {', '.join(names)}")
    return 0


def streams_main(argv: list[str]) -> int:
    """`streams show|freeze|validate NAME [overrides]`.

    show: steps, classes, training images per step and hashes (reads the training annotations once).
    freeze: write the class split to streams/frozen/NAME.json (shipped streams stay identical across library
    versions). validate: read every image and label of both splits and report unreadable or inconsistent files.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmark streams", description=streams_main.__doc__)
    parser.add_argument("action", choices=["show", "freeze", "validate"])
    parser.add_argument("name")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. stream.order_seed=1 data.root=/data")
    parser.add_argument("--json", action="store_true", help="show: print the description as JSON")
    args = parser.parse_args(argv)
    cfg = load_config([f"stream={args.name}", *args.overrides])
    from streams.builder import FROZEN_DIR, build_stream, cache_dir_for, freeze, open_dataset

    root = data_root(cfg)
    if args.action == "freeze":
        from benchmark.data.datasets import DATASETS
        from benchmark.data.types import Vocabulary
        from benchmark.io import atomic_write_json

        if cfg.stream.order == "frequency":
            raise UserError("streams freeze: frequency orders depend on the data; freeze random or natural orders")
        name = cfg.stream.dataset
        vocabulary = (open_dataset(name, "train", root, cfg.data.demo_seed).vocabulary if name.startswith("demo")
                      else Vocabulary.load(DATASETS.get(name).vocabulary))
        atomic_write_json(FROZEN_DIR / f"{cfg.stream.name}.json", freeze(cfg.stream, vocabulary))
        print(f"wrote {FROZEN_DIR / (cfg.stream.name + '.json')}")
        return 0
    if args.action == "validate":
        from benchmark.reporting.progress import Progress

        bar = Progress(quiet=cfg.quiet).bar
        problems = 0
        for split in ("train", "val"):
            dataset = open_dataset(cfg.stream.dataset, split, root, cfg.data.demo_seed, on_error="skip")
            readable = sum(1 for _ in bar(dataset.samples(), desc=f"validate {split}", total=len(dataset)))
            print(f"{split}: {readable}/{len(dataset)} images readable. {dataset.summary()}")
            for image_id, reason in list(dataset.skipped.items())[:20]:
                print(f"  {image_id}: {reason}")
            problems += len(dataset.skipped)
        return 1 if problems else 0
    train = open_dataset(cfg.stream.dataset, "train", root, cfg.data.demo_seed)
    description = build_stream(cfg.stream, train, cache_dir_for(root)).describe()
    if args.json:
        print(json.dumps(description, indent=1))
        return 0
    print(f"{description['name']} v{description['version']}  hash {description['hash']}  dataset {description['dataset']}  "
          f"({description['num_steps']} steps{', panoptic' if description['panoptic'] else ''})")
    for step in description["steps"]:
        names = ", ".join(step["classes"][:8]) + (", ..." if step["num_classes"] > 8 else "")
        print(f"  step {step['step']}: {step['num_classes']:4d} classes, {step['num_train_images']:6d} training images  [{names}]")
    return 0


def export_main(argv: list[str]) -> int:
    """`export-predictions --out DIR key=value ...`: the configured base segmenter's predictions (mask proposals,
    class logits, mask embeddings) for every training and validation image the configured stream uses, in the
    format of benchmark/models/cached.py; later runs read them with `model=cached model.predictions_dir=DIR`
    instead of running the backbone. Resumable: files already in DIR are kept."""
    parser = argparse.ArgumentParser(prog="python -m benchmark export-predictions",
                                     description="Export the base segmenter's predictions for model=cached.")
    parser.add_argument("--out", required=True, help="folder to write (created; resumable)")
    parser.add_argument("overrides", nargs="*", help="config overrides, as for run (model=..., stream=...)")
    args = parser.parse_args(argv)
    bad = [a for a in args.overrides if "=" not in a]
    if bad:
        raise UserError(f"export-predictions takes --out DIR and key=value overrides, got '{bad[0]}'")
    cfg = load_config(args.overrides)
    if cfg.model.kind == "cached":
        raise UserError("model=cached reads exported predictions; export from a model that computes them "
                        "(e.g. model=vit_b16_openai)")
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    from benchmark.models import build_segmenter
    from benchmark.models.cached import export_predictions
    from benchmark.reporting.progress import Progress
    from benchmark.runner import open_stream_data, validation_count
    from streams.builder import cache_dir_for

    progress = Progress(quiet=cfg.quiet)
    train, val, stream = open_stream_data(cfg, progress)
    cache_root = cache_dir_for(data_root(cfg))
    segmenter = build_segmenter(cfg.model, seed=cfg.seed, device=cfg.device, cache_root=cache_root)
    train_images = sorted({index for step in stream.train_indices for index in step})
    val_count = validation_count(cfg, val)
    m = cfg.model
    producer = (f"covseg-bench model={m.name} arch={m.arch} pretrained={m.pretrained} proposals={m.proposals} "
                f"input_size={m.input_size} templates={m.templates} seed={cfg.seed} digest={segmenter.digest}")
    try:
        written, kept = export_predictions(segmenter, [(train, train_images), (val, range(val_count))], out,
                                           train.vocabulary, producer=producer, progress=progress.bar)
    except OSError as exc:
        raise UserError(f"cannot write predictions under --out {out} ({exc.strerror or exc})") from None
    print(f"wrote {written} image(s), kept {kept} already exported, under {out}; use them with: "
          f"python -m benchmark run model=cached model.predictions_dir={out} stream={cfg.stream.name} ...")
    return 0
