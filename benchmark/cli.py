"""Entry points of the core subcommands: run, list, streams."""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import sys
import textwrap
from pathlib import Path

from omegaconf import OmegaConf

from benchmark.config import (CONFIG_DIR, GROUPS, config_file, data_root, group_options, load_config, register_schema,
                              search_path_override, validate)
from benchmark.errors import UserError
from benchmark.registry import suggest


RUN_USAGE = ("usage: python -m benchmark run [group=OPTION ...] [key=value ...] [-m|--multirun] [--cfg job] [-h]\n"
             "  -m         a Hydra sweep: one run per combination of comma-separated values (method=a,b seed=0,1)\n"
             "  --cfg job  print the composed, validated configuration and exit (nothing runs)\n"
             "  -h         this help: config groups, settings and the chosen method's keys")


def shell_overrides(overrides: list[str]) -> list[str]:
    """The overrides as Hydra's grammar reads them: a value typed in the shell as `name="kNN-CLIP k=32"` reaches
    us as `name=kNN-CLIP k=32`, which the grammar refuses (space, second `=`); such a plain `key=value` is
    quoted for it. An override that still does not parse is refused in one line that names it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    parsed = []
    for override in overrides:
        try:
            parser.parse_override(override)
            parsed.append(override)
            continue
        except Exception as exc:  # hydra's OverrideParseException
            reason = str(exc).splitlines()[0]
        key, _, value = override.partition("=")
        quoted = f"{key}='" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        try:
            if not re.fullmatch(r"[+~]{0,2}[\w.]+", key):
                raise ValueError(key)
            parser.parse_override(quoted)
        except Exception:
            raise UserError(f"invalid override '{override}': {reason}") from None
        parsed.append(quoted)
    return parsed


def run_main(argv: list[str]) -> int:
    """`run key=value ...`: compose and validate the config, then run the stream.
    `run -m key=a,b ...` (or --multirun): a Hydra sweep, see `multirun`. `run ... -h` / `--help`: the config
    groups, settings and the chosen method's keys; `run ... --cfg job`: the composed config, nothing runs."""
    if any(a in ("-h", "--help") for a in argv):
        print(run_help([a for a in argv if "=" in a]))
        return 0
    show_config = "--cfg" in argv
    if show_config:
        position = argv.index("--cfg")
        if argv[position + 1:position + 2] != ["job"]:
            raise UserError("--cfg takes 'job' (the composed run configuration): run key=value ... --cfg job")
        argv = argv[:position] + argv[position + 2:]
    sweep = [a for a in argv if a not in ("-m", "--multirun")]
    bad = [a for a in sweep if "=" not in a]
    if bad:
        raise UserError(f"run takes key=value overrides, got '{bad[0]}' (e.g. run method=knnclip stream=demo_4steps; "
                        "run -h for the settings)")
    sweep = shell_overrides(sweep)
    argv = [*sweep, *(["-m"] if len(sweep) < len(argv) else [])]
    if show_config:
        if len(sweep) < len(argv):
            raise UserError("--cfg job shows one configuration; drop -m (or give one value per key)")
        print(OmegaConf.to_yaml(load_config(sweep)), end="")
        return 0
    if len(sweep) < len(argv):
        return multirun(sweep)
    cfg = load_config(argv)
    from benchmark.runner import run_stream

    run_stream(cfg)
    return 0


def config_file_entries(path: Path) -> tuple[str, list[tuple[str, str, str]]]:
    """A YAML config file read as text (no method module imported): its leading comment (the file's
    description) and (key, default value, trailing comment) for every top-level key but `name`; a comment
    continued on the indented comment-only lines below a key is joined to that key's."""
    description, entries = [], []
    values = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
    for line in path.read_text().splitlines():
        if line.startswith("#") and not entries:
            if not line.lstrip("#").strip().startswith("@package"):  # Hydra's package header (configs/protocol/)
                description.append(line.lstrip("#").strip())
            continue
        continued = re.match(r"\s+#\s*(.*)$", line)
        if continued and entries:
            key, value, comment = entries[-1]
            entries[-1] = (key, value, f"{comment} {continued.group(1).strip()}".strip())
            continue
        match = re.match(r"([A-Za-z_]\w*):[^#]*(?:#\s*(.*))?$", line)
        if match and match.group(1) in values and match.group(1) != "name":
            key = match.group(1)
            entries.append((key, json.dumps(values[key]) if not isinstance(values[key], str) else values[key],
                            (match.group(2) or "").strip()))
    return " ".join(description), entries


def schema_entries(schema: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, the field's comment in benchmark/config.py) of a config dataclass's plain fields."""
    source = inspect.getsource(schema)
    comments = dict(re.findall(r"^\s+(\w+):[^#\n]*#\s*(.*)$", source, flags=re.M))
    entries = []
    for item in dataclasses.fields(schema):
        if item.default is dataclasses.MISSING:
            continue  # nested sections (stream, model, ...) and the method: described by their groups
        default = "null" if item.default is None else json.dumps(item.default) if not isinstance(item.default, str) else item.default
        entries.append((prefix + item.name, default, comments.get(item.name, "")))
    return entries


def _format_entries(entries: list[tuple[str, str, str]], indent: str = "  ") -> list[str]:
    """`key=value  comment`, long comments wrapped under the comment column."""
    width = min(34, max((len(f"{k}={v}") for k, v, _ in entries), default=0))
    lines = []
    for key, value, comment in entries:
        head = f"{indent}{f'{key}={value}':<{width}}  "
        wrapped = textwrap.wrap(comment, width=max(40, 118 - len(head)), break_on_hyphens=False) or [""]
        lines += [(head + wrapped[0]).rstrip(), *(" " * len(head) + rest for rest in wrapped[1:])]
    return lines


def default_choice(group: str) -> str:
    """The option configs/config.yaml's defaults list picks for `group`."""
    defaults = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "config.yaml")).get("defaults", [])
    return next((item[group] for item in defaults if isinstance(item, dict) and group in item), "")


def run_help(overrides: list[str]) -> str:
    """Hydra-style help, from the config files and the schema alone (fast: no method is imported)."""
    from benchmark.config import CheckpointConfig, EvalConfig, RunConfig, _check_group_choices

    _check_group_choices(overrides)
    chosen = {group: default_choice(group) for group in GROUPS}
    chosen.update(dict(o.split("=", 1) for o in overrides if o.split("=", 1)[0] in GROUPS))
    lines = [RUN_USAGE, "", "Config groups (group=OPTION; [x] = chosen now):"]
    for group in GROUPS:
        options = [f"[{o}]" if o == chosen[group] else o for o in group_options(group)]
        lines += textwrap.wrap(", ".join(options), width=110, initial_indent=f"  {group + ':':8s} ",
                               subsequent_indent=" " * 11, break_on_hyphens=False)
    settings = [*schema_entries(RunConfig), *schema_entries(EvalConfig, "eval."),
                *schema_entries(CheckpointConfig, "checkpoint.")]
    lines += ["", "Settings (key=value):", *_format_entries(settings)]
    method = chosen["method"]
    description, entries = config_file_entries(config_file("method", method))
    lines += ["", f"Method {method} (method.KEY=VALUE; configs/method/{method}.yaml): {description}",
              *_format_entries([(f"method.{k}", v, c) for k, v, c in entries])]
    lines += ["", "The stream, model, data and logger keys: `run stream=NAME ... --cfg job` prints the whole "
              "composed configuration; `list methods -v` describes every method."]
    return "\n".join(lines)


def multirun(overrides: list[str]) -> int:
    """A Hydra multirun: one job per combination of the comma-separated values (`method=knnclip,zeroshot
    seed=0,1` -> 4 jobs), each a full run with its own run folder. Jobs run one after the other (basic
    launcher), or through `hydra/launcher=joblib` (local processes) or a submitit launcher (SLURM). Every
    combination is validated before the first job starts, so a typo fails in one line, not after hours."""
    import hydra
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    config_overrides = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    check_launcher(overrides)
    try:
        parsed = OverridesParser.create().parse_overrides(config_overrides)
    except Exception as exc:  # hydra's OverrideParseException
        raise UserError(f"invalid sweep override: {str(exc).splitlines()[0]}") from None
    swept = {override.key_or_group for override in parsed if override.is_sweep_override()}
    for batch in BasicSweeper.split_arguments(parsed, None):
        for job_overrides in batch:
            load_config(job_overrides)
    register_schema()

    @hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base=None)
    def run_job(cfg) -> None:
        from hydra.core.hydra_config import HydraConfig

        from benchmark.progress import Progress
        from benchmark.runner import run_stream

        job = HydraConfig.get()  # jobs of a parallel launcher print at once: each line names its job by its values
        values = [item for item in job.overrides.task if item.split("=", 1)[0].lstrip("+~") in swept]
        Progress.prefix = f"[job {job.job.num}: {' '.join(values)}] "
        run_stream(validate(cfg))

    saved_argv = sys.argv
    # hydra.main reads its overrides from sys.argv
    sys.argv = [saved_argv[0], "--multirun", *overrides, *search_path_override()]
    try:
        run_job()
    finally:
        sys.argv = saved_argv
        from benchmark.progress import Progress

        Progress.prefix = ""  # the basic launcher ran the jobs in this process
    return 0


# hydra/launcher=NAME -> (module of its Hydra plugin, the extra of pyproject.toml or package that installs it)
LAUNCHERS = {"joblib": ("hydra_plugins.hydra_joblib_launcher", "pip install 'covseg-bench[joblib]'"),
             "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "pip install hydra-submitit-launcher"),
             "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "pip install hydra-submitit-launcher")}


def check_launcher(overrides: list[str]) -> None:
    """A sweep launcher whose Hydra plugin is not installed is refused in one line naming what to install."""
    import importlib.util

    for item in overrides:
        key, _, name = item.partition("=")
        if key == "hydra/launcher" and name in LAUNCHERS:
            module, install = LAUNCHERS[name]
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:  # not even the hydra_plugins namespace: no launcher plugin at all
                found = False
            if not found:
                raise UserError(f"hydra/launcher={name} needs its Hydra plugin, which is not installed: {install}")


def list_main(argv: list[str]) -> int:
    """`list [methods|streams|protocols|models|data|loggers] [-v]`: the options of each config group; a method is listed by
    its configs/method/<name>.yaml (what `method=NAME` chooses). `-v`: each option's description, and for
    methods every key with its default and meaning. Read from the config files: nothing is imported."""
    verbose = any(a in ("-v", "--verbose") for a in argv)
    argv = [a for a in argv if a not in ("-v", "--verbose")]
    what = argv[0] if argv else None
    kinds = {"methods": "method", "streams": "stream", "protocols": "protocol", "models": "model", "data": "data",
             "loggers": "logger"}
    if what is not None and what not in kinds:
        raise UserError(f"cannot list '{what}'{suggest(what, list(kinds))}; choose from: {', '.join(kinds)}")
    for kind, group in kinds.items():
        if what not in (None, kind):
            continue
        names = group_options(group)
        if not verbose:
            print(f"{kind}: {', '.join(names)}")
        else:
            print(f"{kind}:")
            for name in names:
                description, entries = config_file_entries(config_file(group, name))
                print(f"  {name}: {description}")
                if group == "method":
                    print("\n".join(_format_entries([(f"method.{k}", v, c) for k, v, c in entries], indent="      ")))
        if kind == "streams":  # the published class orders, which any stream of their dataset takes
            from streams.builder import order_presets

            print(f"stream orders (stream.order=NAME; also random, frequency, natural): {', '.join(order_presets())}")
        if kind == "models":  # the registered kinds a model config's `kind` chooses (benchmark/models/__init__.py)
            from benchmark.models import MODEL_KINDS

            print(f"model kinds (model.kind=NAME): {', '.join(MODEL_KINDS.names())}")
    return 0


def streams_main(argv: list[str]) -> int:
    """`streams show|freeze|validate|lists NAME [overrides]`.

    show: steps, classes, training images per step and hashes (reads the training annotations once).
    lists: write the per-step training image lists to --out DIR as train-<t>.txt (read back by stream.train_lists).
    freeze: write the class split to streams/frozen/NAME.json (shipped streams stay identical across library
    versions). validate: read every image and label of both splits and report unreadable or inconsistent files.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmark streams", description=streams_main.__doc__)
    parser.add_argument("action", choices=["show", "freeze", "validate", "lists"])
    parser.add_argument("name")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. stream.order_seed=1 data.root=/data")
    parser.add_argument("--json", action="store_true", help="show: print the description as JSON")
    parser.add_argument("--out", type=Path, default=None, help="lists: the folder to write train-<t>.txt into")
    args = parser.parse_args(argv)
    if args.action == "lists" and args.out is None:
        raise UserError("streams lists: give --out DIR, the folder to write the per-step image lists into")
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
        shipped = None if name.startswith("demo") else DATASETS.get(name).vocabulary  # None: the folder's own
        vocabulary = (Vocabulary.load(shipped) if shipped is not None
                      else open_dataset(name, "train", root, cfg.data.demo_seed).vocabulary)
        atomic_write_json(FROZEN_DIR / f"{cfg.stream.name}.json", freeze(cfg.stream, vocabulary))
        print(f"wrote {FROZEN_DIR / (cfg.stream.name + '.json')}")
        return 0
    if args.action == "validate":
        from benchmark.progress import Progress

        bar = Progress(quiet=cfg.quiet).bar
        problems = 0
        for split in ("train", "val"):
            dataset = open_dataset(cfg.stream.dataset, split, root, cfg.data.demo_seed, on_error="skip",
                                   demo_scale=cfg.data.demo_scale)
            readable = sum(1 for _ in bar(dataset.samples(), desc=f"validate {split}", total=len(dataset)))
            print(f"{split}: {readable}/{len(dataset)} images readable. {dataset.summary()}")
            for image_id, reason in list(dataset.skipped.items())[:20]:
                print(f"  {image_id}: {reason}")
            problems += len(dataset.skipped)
        return 1 if problems else 0
    train = open_dataset(cfg.stream.dataset, "train", root, cfg.data.demo_seed, demo_scale=cfg.data.demo_scale)
    stream = build_stream(cfg.stream, train, cache_dir_for(root))
    if args.action == "lists":
        from streams.train_lists import write_train_lists

        paths = write_train_lists(stream, args.out)
        print(f"wrote {len(paths)} list(s) ({sum(map(len, stream.train_image_ids))} images) to {args.out}; stream hash "
              f"{stream.hash}")
        return 0
    description = stream.describe()
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
    class logits, mask embeddings) for every training and validation image the configured stream uses, in
    format v3 of benchmark/models/cached/format.py (benchmark/exporters/segmenter.py writes them); later runs
    read them with `model=cached model.predictions_dir=DIR` instead of running the backbone. Resumable: files
    already in DIR are kept."""
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
    from benchmark.exporters.images import stream_images
    from benchmark.exporters.segmenter import export_predictions
    from benchmark.models import build_segmenter

    images, vocabulary, progress = stream_images(cfg)
    segmenter = build_segmenter(cfg.model, seed=cfg.seed, device=cfg.device)
    m = cfg.model
    producer = (f"covseg-bench model={m.name} arch={m.arch} pretrained={m.pretrained} proposals={m.proposals} "
                f"input_size={m.input_size} templates={m.templates} seed={cfg.seed} digest={segmenter.digest}")
    try:
        written, kept = export_predictions(segmenter, images, out, vocabulary, producer=producer,
                                           progress=progress.bar)
    except OSError as exc:
        raise UserError(f"cannot write predictions under --out {out} ({exc.strerror or exc})") from None
    print(f"wrote {written} image(s), kept {kept} already exported, under {out}; use them with: "
          f"python -m benchmark run model=cached model.predictions_dir={out} stream={cfg.stream.name} ...")
    return 0
