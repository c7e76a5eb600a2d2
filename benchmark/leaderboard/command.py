"""`python -m benchmark leaderboard [stream=NAME] [results_dir=PATH] [bootstrap=N] [--format NAME[,NAME]]
[--columns NAME[,NAME]] [--strict] [--isolated-only]`: tables over every finished run.

Reads every run folder `<results_dir>/<stream>/<method>/<run-id>/` (summary.json, manifest.json,
config.yaml; benchmark.leaderboard.runs), ignores runs whose manifest is not `"status": "complete"` (and lists
them), prints each stream table's main columns in the terminal and writes into `<results_dir>/`:
  LEADERBOARD.md            every table with all columns, links to each run and its plots
  leaderboard.csv           one line per table row: means and stds in separate columns, full provenance
  leaderboard.html          all of it in one file: tables, the figures embedded, each run's matrix and its files
  results.csv               the counted runs' records of `benchmark.results` (run x step x class group x metric)
  class_iou-<table>.csv     per class: the step that taught it and each variant's final IoU (mean over runs)
  leaderboard.tex           with `--format latex`: booktabs tables (mean ± std, best in bold) for \input
  (a format of one's own)   with `--format NAME`: registered by a module on COVSEG_PATH (benchmark.leaderboard.formats)
  plots/<table>-*.png       per stream table: the score on S_t after each step, mIoU on seen / previous / last
                            classes, final mIoU vs memory (Pareto) and forgetting, one colour and marker per
                            variant in every figure (benchmark.leaderboard.figures)
Variants are labelled by a run's `name=` when set, else compactly from the method keys that differ from the
method's YAML (`knnclip k=32`, `avalanche/EWC λ=1000`). time/step shows runs whose per-image features came
mostly from the disk cache (`warm`, manifest `passes.disk_cache_hits`) apart from the others (`cold`).

Statistics: each row's final mIoU also gets a 95% bootstrap interval over the validation images (`bootstrap=N`
resamples, default 1000, 0: none; from the per-image counts of the last step, benchmark.evaluation.per_image),
and a paired difference to the zero-shot row of the same model (else the first row): the mean ± std over the
pairs of runs on the same stream hash, seed and class order, with their number n.

Grouping, so that a number only ever averages comparable runs:
- stream: name, version and *definition* (a hash of the stream config without `order` and `order_seed`, plus
  the demo data seed). Class orders (order_seed of a random order, or a published order: natural, mib_b,
  eclipse_c, ...) of one definition are aggregated; their stream hashes are listed.
  Should one class order show two different stream hashes (the data changed under the same definition),
  that definition is split by stream hash instead, so different data is never mixed.
- row: the resolved configuration (`config_hash`: a short hash of config.yaml without the keys that vary
  between the runs of one row (seed, stream.order_seed) or never change a number (EXECUTION_KEYS: run_id,
  results_dir, device, threads, batch sizes, ...)), labelled with the method keys that differ from
  configs/method/<name>.yaml (e.g. `knnclip k=32`, `avalanche/EWC λ=1000`; a run's `name=` replaces it), the
  model and the evaluation settings.
- validation set: runs scored on different validation images (manifest `data.validation_digest`, e.g. after
  `data.on_error=skip` left a file out) are different rows, labelled with the set, and are never paired.
- repeats: runs of one row with the same seed, class order and stream hash are one sample, not several: the
  latest complete one (manifest `finished`) counts, the others are listed as superseded; for FWT and learning
  gain, the latest one that has the initial evaluation (`eval.initial`) counts.
Each cell is the mean ± sample standard deviation over the row's distinct runs (seeds × class orders),
n = runs; a cell covering fewer runs than its row shows its own n; rows are sorted by final mIoU. Every stream
metric registered in benchmark.evaluation.stream_metrics is a column. "excess forgetting" pairs each run with
the zero-shot run of the same stream hash, model, seed, evaluation settings and validation set (the latest, if
repeated): the forgetting column's metric minus zero-shot's (runs without one do not count); "FWT" and
"learning gain" are measured against the run's initial evaluation (row -1 of R). Failed runs (manifest
`"status": "failed"`, with the reason) and unfinished ones (`running`, `interrupted`) are listed apart, after
the tables.

Protocol: runs whose manifest says `protocol.ground_truth_access` (e.g. "oracle_proposals": ground truth used
on purpose, for analysis) are never ranked; they get their own tables, "Analysis runs (ground truth used on
purpose)", after the ranking. A manifest without `protocol` counts as the sealed protocol.

Provenance: the `provenance` column marks each row whose runs cannot be traced to committed code:
  † dirty tree                  the git working tree had changes (or the method's files were untracked) at the run
  ‡ source changed since run    the method's source files (manifest `method_source.files`) differ on disk now
  § unregistered source         the method's module lies outside this repository's methods/ and baselines/
  ? no provenance               the manifest predates `method_source` (or has no git state nor installed version)
  ¶ foreign code                modules from COVSEG_PATH or an entry point were imported (manifest `plugins`)
`--strict` leaves every marked run out (and says how many, and why).

Isolation: runs made with isolate=true (manifest `execution.isolate`: the method ran in a worker process that
never saw labels, data paths or the evaluator) carry "[isolated]" in their label; isolate is part of a row's
configuration, so isolated and in-process runs never share a row. `--isolated-only` ranks isolated runs only.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd

from benchmark.errors import UserError
from benchmark.io import atomic_write_text
from benchmark.leaderboard.figures import write_curves
from benchmark.leaderboard.formats import REPORT_FORMATS, ReportFormat, report_formats
from benchmark.leaderboard.records import COLUMNS, run_records
from benchmark.leaderboard.runs import Run, read_runs
from benchmark.leaderboard.statistics import class_table, stream_tables
from benchmark.leaderboard.table import Leaderboard, column_keys
from benchmark.leaderboard.terminal import terminal_width
from benchmark.plugins import load_foreign
from benchmark.registry import suggest

# bootstrap: image resamples (0: none); format: report formats beyond the default ones, comma-separated
# columns: the column keys (benchmark.leaderboard.table.column_keys) every format shows, comma-separated
OPTIONS = {"stream": None, "results_dir": "results", "bootstrap": "1000", "format": "", "columns": ""}
FLAGS = ("--strict", "--isolated-only")
USAGE = ("it takes stream=NAME results_dir=PATH bootstrap=N --format NAME --columns A,B --strict "
         "--isolated-only")
VALUED = ("--format", "--columns")  # flags that take a value: `--format X` or `--format=X`


def parse_options(argv: list[str]) -> dict:
    """key=value options (OPTIONS; `--format X` and `--format=X` too) and the flags (options["strict"],
    options["isolated-only"]); options["formats"]: the requested report formats, checked."""
    options = {**OPTIONS, "strict": False, "isolated-only": False}
    items = list(argv)
    while items:
        item = items.pop(0)
        if item in VALUED and items:
            item = f"{item[2:]}={items.pop(0)}"
        elif item.startswith(tuple(f"{flag}=" for flag in VALUED)):
            item = item[2:]
        elif item.startswith("-"):
            if item not in FLAGS:
                raise UserError(f"leaderboard: unknown flag '{item}'{suggest(item, [*FLAGS, *VALUED])}; {USAGE}")
            options[item.lstrip("-")] = True
            continue
        key, sep, value = item.partition("=")
        if not sep or key not in OPTIONS:
            what = f"unknown option '{key}'{suggest(key, list(OPTIONS))}" if sep else f"'{item}' is not key=value"
            raise UserError(f"leaderboard: {what}; {USAGE}")
        options[key] = value
    options["formats"] = [name for name in options["format"].split(",") if name]
    for name in options["formats"]:
        if name not in REPORT_FORMATS:
            raise UserError(f"leaderboard: format={name} is not a report format{suggest(name, REPORT_FORMATS.names())}"
                            f"; registered: {', '.join(REPORT_FORMATS.names())}")
    options["columns"] = _columns(options["columns"])
    if not options["bootstrap"].isdigit():
        raise UserError(f"leaderboard: bootstrap={options['bootstrap']} must be a whole number (0: no intervals)")
    return options


def _columns(value: str) -> list[str] | None:
    """--columns a,b,c checked against the column names; None when not given."""
    if not value:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    valid = column_keys()
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise UserError(f"leaderboard: --columns: unknown column(s) {', '.join(unknown)}"
                        f"{suggest(unknown[0], valid)}; valid: {', '.join(valid)}")
    return names


def select_runs(options: dict, results_dir: Path, digests: dict) -> tuple[list[Run], list, list, list]:
    """(counted runs, skipped (folder, reason), runs left out by --isolated-only, (run, issues) left out by
    --strict)."""
    stream = options["stream"]
    runs, skipped = read_runs(results_dir, stream)
    if not runs:
        streams = sorted({p.parent.parent.parent.name for p in results_dir.glob("*/*/*/manifest.json")})
        where = f" of stream '{stream}'{suggest(stream, streams)}" if stream else ""
        raise UserError(f"no complete run{where} under {results_dir} ({len(skipped)} incomplete); "
                        "run one with `python -m benchmark run method=NAME stream=NAME`")
    # the public demo draw ranks nothing: any method can regenerate its labels
    ranked = lambda run: run.isolated and not run.manifest.public_draw  # noqa: E731
    not_isolated = [run for run in runs if not ranked(run)] if options["isolated-only"] else []
    if not_isolated:
        runs = [run for run in runs if ranked(run)]
        if not runs:
            raise UserError(f"leaderboard --isolated-only: none of the {len(not_isolated)} complete run(s) under "
                            f"{results_dir} ran with isolate=true on a private draw")
    left_out = [(run, run.provenance(digests)) for run in runs] if options["strict"] else []
    left_out = [(run, issues) for run, issues in left_out if issues]
    if left_out:
        excluded = {id(run) for run, _ in left_out}
        runs = [run for run in runs if id(run) not in excluded]
        if not runs:
            raise UserError(f"leaderboard --strict: all {len(left_out)} complete run(s) under {results_dir} lack "
                            f"clean provenance ({', '.join(sorted({i for _, issues in left_out for i in issues}))}); "
                            "rerun them from a clean, committed tree or leave out --strict")
    return runs, skipped, not_isolated, left_out


def write_outputs(board: Leaderboard, formats: list[ReportFormat]) -> list[Path]:
    """The figures, per-class tables, results.csv and every format's file (the default formats' first,
    results.csv after them); returns the paths of the tables (figures go to plots/)."""
    results_dir = board.results_dir
    board.figures = write_curves(board.tables, results_dir)
    board.class_tables = {table.slug: class_table(table) for table in board.tables}
    for slug, frame in board.class_tables.items():
        if not frame.empty:
            board.class_files[slug] = results_dir / f"class_iou-{slug}.csv"
            atomic_write_text(board.class_files[slug], frame.to_csv(index=False, float_format="%.2f"))
    written = {f.file: f.render(board) for f in formats if f.file and f.default}
    counted = [run for t in board.tables for row in t.rows for run in row["runs"]]
    records = pd.DataFrame.from_records([r for run in counted for r in run_records(run, results_dir)],
                                        columns=list(COLUMNS))
    written["results.csv"] = records.to_csv(index=False)
    written.update({f.file: f.render(board) for f in formats if f.file and not f.default})
    for name, text in written.items():
        atomic_write_text(results_dir / name, text)
    return [results_dir / name for name in written]


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    load_foreign()  # stream metrics and report formats of one's own (COVSEG_PATH, entry points)
    options = parse_options(argv)
    results_dir = Path(options["results_dir"])
    if not results_dir.is_dir():
        raise UserError(f"results_dir={results_dir} is not a folder; pass results_dir= where the runs were written")
    digests: dict = {}  # current sha256 of method source files, shared by all runs
    runs, skipped, not_isolated, left_out = select_runs(options, results_dir, digests)
    bootstrap = int(options["bootstrap"])
    tables = (stream_tables([r for r in runs if r.ground_truth_access is None], digests=digests, bootstrap=bootstrap)
              + stream_tables([r for r in runs if r.ground_truth_access is not None], analysis=True, digests=digests,
                              bootstrap=bootstrap))
    board = Leaderboard(tables, results_dir, skipped, options["stream"], len(left_out) if options["strict"] else None,
                        columns=options["columns"])
    formats = report_formats(options["formats"])
    files = write_outputs(board, formats)
    for report in formats:
        if report.file is None:
            print(report.render(board), end="")
    say(f"leaderboard of {len(runs)} complete run(s) in {len(tables)} stream table(s): "
        f"{', '.join(map(str, files))}")
    print_notes(board, options, not_isolated, left_out)
    return 0


def say(text: str) -> None:
    """Print, wrapped to the terminal's width (benchmark.leaderboard.terminal.terminal_width)."""
    width = terminal_width()
    print(text if width is None else "\n".join(textwrap.wrap(text, width, subsequent_indent="  ",
                                                              break_on_hyphens=False)))


def print_notes(board: Leaderboard, options: dict, not_isolated: list[Run], left_out: list) -> None:
    """What the tables leave out or mark, and why."""
    tables, skipped = board.tables, board.skipped
    analysis = sum(len(t.runs) for t in tables if t.analysis)
    if analysis:
        say(f"{analysis} analysis run(s) that used ground truth on purpose are listed apart, not ranked")
    marked = sum(1 for t in tables for row in t.rows for issues in row["run_provenance"] if issues)
    if marked:
        say(f"{marked} run(s) marked for provenance (dirty tree, changed or unregistered source, foreign code "
              "or none recorded); --strict leaves them out")
    if options["isolated-only"]:
        say(f"--isolated-only: left out {len(not_isolated)} run(s) that did not run with isolate=true or ran on "
            "the public demo draw")
    if options["strict"]:
        say(f"--strict: left out {len(left_out)} run(s) without clean provenance" + (":" if left_out else ""))
        for run, issues in left_out:
            say(f"  {run.path}: {', '.join(issues)}")
    superseded = sum(len(row["superseded"]) for t in tables for row in t.rows)
    if superseded:
        say(f"{superseded} repeated run(s) superseded by a later run of the same config, seed and class order "
              "(listed, not averaged)")
    if skipped:
        say(f"skipped {len(skipped)} incomplete run(s) ({sum(r.startswith('failed: ') for _, r in skipped)} failed):")
        for path, reason in skipped:
            say(f"  {path}: {reason}")
