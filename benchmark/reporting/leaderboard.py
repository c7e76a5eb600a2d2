"""`python -m benchmark leaderboard [stream=NAME] [results_dir=PATH] [bootstrap=N] [--strict]`: tables over every
finished run.

Reads every run folder `<results_dir>/<stream>/<method>/<run-id>/` (summary.json, manifest.json,
config.yaml), ignores runs whose manifest is not `"status": "complete"` (and lists them), and writes
`<results_dir>/LEADERBOARD.md`, `<results_dir>/leaderboard.csv`, `<results_dir>/results.csv` (the counted runs'
records of `benchmark.results`: one line per run x step x class group x metric) and per stream a figure of the
score on S_t after each step (`<results_dir>/plots/`).

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
  configs/method/<name>.yaml (e.g. `knnclip (k=32)`), the model and the evaluation settings.
- repeats: runs of one row with the same seed, class order and stream hash are one sample, not several: the
  latest complete one (manifest `finished`) counts, the others are listed as superseded.
Each cell is the mean ± sample standard deviation over the row's distinct runs (seeds × class orders),
n = runs; rows are sorted by final mIoU. "excess forgetting" pairs each run with the zero-shot run of the
same stream hash, model, seed and evaluation settings (the latest, if repeated): forgetting_max minus
zero-shot's (runs without one do not count); "FWT" and "learning gain" are measured against the run's
initial evaluation (row -1 of R). Failed runs (manifest `"status": "failed"`, with the reason) and
unfinished ones (`running`, `interrupted`) are listed apart, after the tables.

Protocol: runs whose manifest says `protocol.ground_truth_access` (e.g. "oracle_proposals": ground truth used
on purpose, for analysis) are never ranked; they get their own tables, "Analysis runs (ground truth used on
purpose)", after the ranking. A manifest without `protocol` counts as the sealed protocol.

Provenance: the `provenance` column marks each row whose runs cannot be traced to committed code:
  † dirty tree                  the git working tree had changes (or the method's files were untracked) at the run
  ‡ source changed since run    the method's source files (manifest `method_source.files`) differ on disk now
  § unregistered source         the method's module lies outside this repository's methods/ and baselines/
  ? no provenance               the manifest predates `method_source` (or has no git state)
`--strict` leaves every marked run out (and says how many, and why).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from benchmark.config import EvalConfig, ModelConfig, config_file
from benchmark.errors import UserError
from benchmark.io import atomic_write_text
from benchmark.registry import suggest
from benchmark.reporting.plots import save_figure, seen_curves_figure
from benchmark.reporting.results import REPO_ROOT, file_sha256, source_digest

OPTIONS = {"stream": None, "results_dir": "results", "bootstrap": "1000"}  # bootstrap: image resamples (0: none)
FLAGS = ("--strict",)
# provenance problems of a run, their footnote marks and explanations (in this order in every cell)
PROVENANCE_MARKS = {
    "dirty tree": ("†", "the git working tree had uncommitted or untracked changes when the run started or resumed"),
    "source changed since run": ("‡", "the method's source files differ now from their digest in the manifest"),
    "source changed during run": ("‡", "the run was resumed with other method source files than it started with"),
    "unregistered source": ("§", "the method's module is not in this repository's methods/ or baselines/"),
    "no provenance": ("?", "the manifest records no method source digest or no git state (an older run)"),
}
ANALYSIS_TITLE = "Analysis runs (ground truth used on purpose)"
EXCESS_FORGETTING = "excess_forgetting"  # derived from two runs (see excess_forgetting_by_run), not in a summary
# (summary metric, key, column title); a column is shown when some row of the table has a value
METRIC_COLUMNS = [
    ("miou", "final", "final mIoU"), ("pq", "final", "final PQ"), ("miou", "avg_incremental", "avg inc. mIoU"),
    ("miou", "forgetting_max", "forgetting"), ("miou", EXCESS_FORGETTING, "excess forgetting"), ("miou", "bwt", "BWT"),
    ("miou", "forward_transfer", "FWT"), ("miou", "learning_gain", "learning gain"), ("miou", "old", "old"),
    ("miou", "new", "new"),
]
EVAL_KEYS = ("vocabulary", "miou_mode", "max_images")  # evaluation settings that change the numbers
# config keys left out of a row's identity: they vary between the runs of a row (seed, class order) or change
# where and how fast a run goes, never its numbers
EXECUTION_KEYS = ("seed", "stream.order", "stream.order_seed", "run_id", "results_dir", "quiet", "debug", "resume",
                  "device", "threads", "logger", "data.root", "data.on_error", "model.batch_size", "model.cache_dir",
                  "eval.batch_size", "eval.initial")


def short_hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:8]


def non_default(values: dict, defaults: dict) -> list[str]:
    """`key=value` for every key whose value differs from `defaults` (or is not in it), in key order."""
    missing = object()
    return [f"{key}={values[key]}" for key in sorted(values)
            if key != "name" and defaults.get(key, missing) != values[key]]


def _yaml_defaults(group: str, name: str) -> dict:
    path = config_file(group, name)
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True) if path is not None else {}


def config_identity(config: dict) -> dict:
    """The resolved config without EXECUTION_KEYS: what a row's runs share."""
    identity = json.loads(json.dumps(config, default=str))
    for dotted in EXECUTION_KEYS:
        *parents, leaf = dotted.split(".")
        node = identity
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return identity


@dataclass
class Run:
    """One complete run folder."""

    path: Path
    manifest: dict
    config: dict  # resolved config.yaml
    summary: dict

    @property
    def stream_definition(self) -> str:
        stream = {k: v for k, v in self.config["stream"].items() if k not in ("order", "order_seed")}
        return short_hash({"stream": stream, "demo_seed": self.config.get("data", {}).get("demo_seed")})

    @property
    def order_seed(self):
        """The run's class order: its order_seed for a random order, else the order's name (natural, mib_b, ...)."""
        stream = self.config["stream"]
        return stream.get("order_seed") if stream.get("order", "random") == "random" else stream.get("order")

    @property
    def method_config(self) -> dict:
        return self.config["method"]

    def method_label(self) -> str:
        method = self.method_config
        changed = non_default(method, _yaml_defaults("method", method["name"]))
        return method["name"] + (f" ({', '.join(changed)})" if changed else "")

    def model_label(self) -> str:
        model = self.config["model"]
        defaults = {**OmegaConf.to_container(OmegaConf.structured(ModelConfig)),
                    **_yaml_defaults("model", model["name"])}
        changed = non_default(model, defaults)
        return model["name"] + (f" ({', '.join(changed)})" if changed else "")

    def eval_setting(self) -> dict:
        return {key: self.config.get("eval", {}).get(key) for key in EVAL_KEYS}

    @property
    def ground_truth_access(self) -> str | None:
        """The manifest's `protocol.ground_truth_access` (None: the sealed protocol, also for older manifests)."""
        return (self.manifest.get("protocol") or {}).get("ground_truth_access")

    @property
    def config_hash(self) -> str:
        return short_hash(config_identity(self.config))

    def row_key(self) -> tuple:
        return self.method_config["name"], self.config_hash, self.ground_truth_access

    def repeat_key(self) -> tuple:
        """Runs of one row with equal keys repeat one experiment (same seed, class order and data)."""
        return str(self.config.get("seed")), str(self.order_seed), str(self.manifest.get("stream_hash"))

    def stream_metrics(self) -> dict[str, float]:
        """{"miou.final": value, ...}: the run's `group == "stream"` records of benchmark.results."""
        if "_stream_metrics" not in self.__dict__:
            from benchmark.results import run_records

            self.__dict__["_stream_metrics"] = {r["metric"]: r["value"] for r in run_records(self)
                                                if r["group"] == "stream"}
        return self.__dict__["_stream_metrics"]

    @property
    def finished(self) -> str:
        return str(self.manifest.get("finished") or self.manifest.get("started") or "")

    def provenance(self, digests: dict | None = None) -> list[str]:
        """The provenance problems of this run (keys of PROVENANCE_MARKS; [] for a clean run). `digests` caches
        the current sha256 of source files across runs."""
        return provenance_issues(self.manifest, digests)


def _current_sha(key: str, digests: dict) -> str | None:
    if key not in digests:
        path = Path(key) if key.startswith("/") else REPO_ROOT / key
        try:
            digests[key] = file_sha256(path)
        except OSError:
            digests[key] = None
    return digests[key]


def provenance_issues(manifest: dict, digests: dict | None = None) -> list[str]:
    """What keeps a run from being traced to committed, registered code; see PROVENANCE_MARKS."""
    digests = {} if digests is None else digests
    source = manifest.get("method_source")
    git = manifest.get("git") or {}
    resumed = [r for r in manifest.get("resumed", []) if isinstance(r, dict)]
    issues = []
    if (git.get("dirty") or any((r.get("git") or {}).get("dirty") for r in resumed)
            or (source or {}).get("untracked")):
        issues.append("dirty tree")
    if source:
        files = source.get("files") or {}
        now = {key: _current_sha(key, digests) for key in files}
        if not files or None in now.values() or source_digest(now) != source.get("digest"):
            issues.append("source changed since run")
        if any((r.get("method_source") or {}).get("digest") not in (None, source.get("digest")) for r in resumed):
            issues.append("source changed during run")
        if not source.get("registered"):
            issues.append("unregistered source")
    if not source or git.get("dirty") is None:
        issues.append("no provenance")
    return issues


def read_runs(results_dir: Path, stream: str | None = None) -> tuple[list[Run], list[tuple[Path, str]]]:
    """Complete runs under `results_dir` (optionally of one stream) and (folder, reason) for every other one
    (failed runs: `failed: <reason>`)."""
    runs, skipped = [], []
    for manifest_path in sorted(Path(results_dir).glob("*/*/*/manifest.json")):
        run_dir = manifest_path.parent
        if stream is not None and run_dir.parent.parent.name != stream:
            continue
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            skipped.append((run_dir, f"unreadable manifest.json ({exc})"))
            continue
        if manifest.get("status") == "failed":
            skipped.append((run_dir, f"failed: {manifest.get('failure') or 'no reason recorded'}"))
            continue
        if manifest.get("status") != "complete":
            skipped.append((run_dir, f"status {manifest.get('status')!r}"))
            continue
        try:
            summary = json.loads((run_dir / "summary.json").read_text())
            config = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=True)
        except (OSError, ValueError) as exc:
            skipped.append((run_dir, f"unreadable summary.json or config.yaml ({exc})"))
            continue
        runs.append(Run(run_dir, manifest, config, summary))
    return runs, skipped


@dataclass
class StreamTable:
    """The runs of one stream definition (and, only if the data changed under it, one stream hash)."""

    name: str
    version: int
    definition: str
    runs: list[Run]
    split_hash: str | None = None  # set when this table holds only the runs of this stream hash
    rows: list[dict] = field(default_factory=list)
    analysis: bool = False  # runs that used ground truth on purpose: shown apart, never ranked

    @property
    def slug(self) -> str:
        return (("analysis-" if self.analysis else "") + f"{self.name}-v{self.version}-{self.definition}"
                + (f"-{self.split_hash[:8]}" if self.split_hash else ""))

    def hashes_by_order(self) -> dict:
        hashes = defaultdict(set)
        for run in self.runs:
            hashes[run.order_seed].add(run.manifest.get("stream_hash"))
        return dict(sorted(hashes.items(), key=lambda item: _order(item[0])))


def stream_tables(runs: list[Run], analysis: bool = False, digests: dict | None = None,
                  bootstrap: int = 0) -> list[StreamTable]:
    """The tables of `runs`; `analysis`: they used ground truth on purpose (unranked tables); `bootstrap`:
    resamples of the validation images for the final mIoU's confidence interval (0: none)."""
    by_definition = defaultdict(list)
    for run in runs:
        by_definition[(run.manifest["stream"], run.manifest.get("stream_version"), run.stream_definition)].append(run)
    tables = []
    for (name, version, definition), members in sorted(by_definition.items(), key=lambda item: str(item[0])):
        table = StreamTable(name, version, definition, members, analysis=analysis)
        if all(len(hashes) == 1 for hashes in table.hashes_by_order().values()):
            tables.append(table)
            continue
        by_hash = defaultdict(list)
        for run in members:
            by_hash[run.manifest.get("stream_hash")].append(run)
        tables += [StreamTable(name, version, definition, group, split_hash=str(stream_hash), analysis=analysis)
                   for stream_hash, group in sorted(by_hash.items(), key=lambda item: str(item[0]))]
    for table in tables:
        table.rows = aggregate_rows(table.runs, digests)
        for row in table.rows:
            row["miou_final_ci"] = final_miou_interval(row["runs"], bootstrap)
        add_paired_differences(table.rows)
    return tables


def _metric(run: Run, metric: str, key: str) -> float:
    """A stream metric of a run, from its records in benchmark.results (the data `results.load` returns)."""
    return run.stream_metrics().get(f"{metric}.{key}", float("nan"))


def mean_std(values: list[float]) -> tuple[float, float, int]:
    """Mean and sample standard deviation (ddof=1; NaN for a single value) over the finite values."""
    finite = np.array([v for v in values if not math.isnan(v)], dtype=float)
    if finite.size == 0:
        return float("nan"), float("nan"), 0
    return float(finite.mean()), float(finite.std(ddof=1)) if finite.size > 1 else float("nan"), int(finite.size)


def _seconds_per_step(run: Run) -> float:
    seconds = run.summary.get("seconds", {})
    learn, evaluate = seconds.get("learn") or [], seconds.get("eval") or []
    return (sum(learn) + sum(evaluate)) / len(learn) if learn else float("nan")


def _curve(runs: list[Run], metric: str, values=None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over runs of a per-step score (NaN where no run has a value): the score on S_t, or
    `values(run)` (a list per step) when given."""
    values = values or (lambda run: run.summary.get("seen", {}).get(metric))
    curves = [[float("nan") if v is None else v for v in values(run) or []] for run in runs]
    length = max((len(c) for c in curves), default=0)
    padded = np.full((len(curves), length), np.nan)  # (runs, steps)
    for i, curve in enumerate(curves):
        padded[i, : len(curve)] = curve
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (and single values for std) stay NaN
        mean = np.nanmean(padded, axis=0) if length else np.zeros(0)
        std = np.nanstd(padded, axis=0, ddof=1) if len(curves) > 1 else np.full(length, np.nan)
    return mean, std


def _order(value) -> tuple:
    """Sort key for seeds: numbers by value, anything else (None) after them."""
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def deduplicate(runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """(distinct, superseded): of the runs repeating one experiment (`Run.repeat_key`), the latest finished
    counts; the others are superseded (kept on disk and listed, never averaged in)."""
    latest: dict[tuple, Run] = {}
    for run in sorted(runs, key=lambda r: (r.finished, r.path.name)):
        latest[run.repeat_key()] = run
    kept = {id(run) for run in latest.values()}
    return [r for r in runs if id(r) in kept], [r for r in runs if id(r) not in kept]


def excess_forgetting_by_run(runs: list[Run]) -> dict[Path, float]:
    """Per run: its forgetting_max (mIoU) minus that of the zero-shot run on the same stream (hash), model,
    seed and evaluation settings (benchmark.evaluation.stream_metrics: the forgetting not explained by the
    vocabulary's growth); NaN without such a zero-shot run. Of repeated zero-shot runs the latest counts."""
    def pairing(run: Run) -> tuple:
        identity = config_identity(run.config)  # batch sizes and cache folders do not break a pair
        return (run.manifest.get("stream_hash"), short_hash(identity.get("model")), run.config.get("seed"),
                short_hash(identity.get("eval")))

    zero_shot = {}
    for run in sorted(runs, key=lambda r: (r.finished, r.path.name)):
        if run.method_config["name"] == "zeroshot":
            zero_shot[pairing(run)] = _metric(run, "miou", "forgetting_max")
    return {run.path: _metric(run, "miou", "forgetting_max") - zero_shot.get(pairing(run), float("nan"))
            for run in runs}


def final_miou_interval(runs: list[Run], samples: int, level: float = 0.95) -> tuple[float, float]:
    """The `level` bootstrap interval (percentiles) of the row's mean final mIoU over resamples of the validation
    images (benchmark.evaluation.per_image: the last step's per-image counts); (NaN, NaN) without them, for
    legacy-mode rows, or with samples=0. It shows how much the score depends on which images are evaluated;
    the std over runs shows the seeds' and class orders' share."""
    from benchmark.evaluation.per_image import KEYS, bootstrap_miou

    none = (float("nan"), float("nan"))
    if samples <= 0 or any(r.config.get("eval", {}).get("miou_mode", "present") != "present" for r in runs):
        return none
    counts = []
    for run in runs:
        steps = sorted((run.path / "stats").glob("step_*.npz"))
        stats = np.load(steps[-1]) if steps else {}
        if not all(key in stats for key in KEYS):
            return none
        counts.append({key: stats[key] for key in KEYS})
    classes = sorted({c for step in runs[0].manifest.get("step_classes") or [] for c in step})
    if not classes or len({int(c["image_count"]) for c in counts}) != 1:
        return none
    replicates = bootstrap_miou(counts, classes, samples)
    tail = 100 * (1 - level) / 2
    return float(np.nanpercentile(replicates, tail)), float(np.nanpercentile(replicates, 100 - tail))


def add_paired_differences(rows: list[dict]) -> None:
    """row["paired"] = (reference label, (mean, std, n)): final mIoU minus that of the reference row over the
    pairs of runs on the same stream hash, seed and class order. The reference is the zero-shot row of the same
    model and evaluation settings (the floor every continual method is compared with), else the first row."""
    for row in rows:
        reference = next((r for r in rows if r["method"] == "zeroshot" and r["model"] == row["model"]
                          and r["runs"][0].eval_setting() == row["runs"][0].eval_setting()), rows[0])
        if reference is row:
            row["paired"] = (reference["label"], (float("nan"), float("nan"), 0))
            continue
        by_key = {run.repeat_key(): run for run in reference["runs"]}
        differences = [_metric(run, "miou", "final") - _metric(by_key[run.repeat_key()], "miou", "final")
                       for run in row["runs"] if run.repeat_key() in by_key]
        row["paired"] = (reference["label"], mean_std(differences))


def format_interval(interval: tuple[float, float]) -> str:
    low, high = interval
    return "–" if math.isnan(low) else f"[{low:.1f}, {high:.1f}]"


def format_difference(paired: tuple[str, tuple[float, float, int]]) -> str:
    label, (mean, std, n) = paired
    if not n:
        return "–"
    spread = "" if math.isnan(std) else f" ± {std:.1f}"
    return f"{mean:+.1f}{spread} (n={n}) vs {label}".replace("|", "\\|")


def aggregate_rows(runs: list[Run], digests: dict | None = None) -> list[dict]:
    """One row per resolved configuration (and ground truth access), repeated runs counted once, best final
    mIoU first."""
    digests = {} if digests is None else digests
    groups = defaultdict(list)
    for run in runs:
        groups[run.row_key()].append(run)
    excess = excess_forgetting_by_run(runs)
    rows = []
    for (method, config_hash, access), members in groups.items():
        members, superseded = deduplicate(members)
        members.sort(key=lambda r: (_order(r.config.get("seed")), _order(r.order_seed), r.path.name))
        first = members[0]
        eval_changed = non_default(first.eval_setting(), {k: getattr(EvalConfig(), k) for k in EVAL_KEYS})
        row = {
            "method": method, "config_hash": config_hash,
            "label": first.method_label() + (f" [eval {', '.join(eval_changed)}]" if eval_changed else "")
            + (f" [ground truth: {access}]" if access else ""),
            "ground_truth_access": access,
            "model": first.model_label(), "n_runs": len(members),
            "seeds": sorted({r.config.get("seed") for r in members}, key=_order),
            "order_seeds": sorted({r.order_seed for r in members}, key=_order),
            "runs": members, "superseded": sorted(superseded, key=lambda r: r.path.name),
        }
        for metric, key, _ in METRIC_COLUMNS:
            row[f"{metric}_{key}"] = mean_std([excess[r.path] if key == EXCESS_FORGETTING else _metric(r, metric, key)
                                               for r in members])
        row["memory_bytes"] = mean_std([float((r.summary.get("memory_bytes") or [float("nan")])[-1]) for r in members])
        row["seconds_per_step"] = mean_std([_seconds_per_step(r) for r in members])
        row["curves"] = {metric: _curve(members, metric) for metric in ("miou", "pq")
                         if any(r.summary.get("seen", {}).get(metric) for r in members)}
        row["git"] = sorted({(r.manifest.get("git") or {}).get("commit") or "unknown" for r in members})
        row["run_provenance"] = [r.provenance(digests) for r in members]
        row["provenance"] = {issue: sum(issue in issues for issues in row["run_provenance"])
                             for issue in PROVENANCE_MARKS if any(issue in i for i in row["run_provenance"])}
        rows.append(row)
    rows.sort(key=lambda row: (math.isnan(row["miou_final"][0]), -np.nan_to_num(row["miou_final"][0]), row["label"]))
    return rows


def human_bytes(value: float) -> str:
    if math.isnan(value):
        return "–"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def human_seconds(value: float) -> str:
    if math.isnan(value):
        return "–"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min" if value < 7200 else f"{value / 3600:.1f} h"


def format_score(stat: tuple[float, float, int]) -> str:
    mean, std, _ = stat
    if math.isnan(mean):
        return "–"
    return f"{mean:.1f}" if math.isnan(std) else f"{mean:.1f} ± {std:.1f}"


def _link(target: Path, base: Path) -> str:
    return target.resolve().relative_to(base.resolve()).as_posix()


def provenance_cell(row: dict) -> str:
    """`ok`, or each problem with its mark and how many of the row's runs have it (e.g. `‡ source changed since
    run (1/3)`)."""
    if not row["provenance"]:
        return "ok"
    n = row["n_runs"]
    return "; ".join(f"{PROVENANCE_MARKS[issue][0]} {issue}" + (f" ({count}/{n})" if n > 1 else "")
                     for issue, count in row["provenance"].items())


def _marks(issues: list[str]) -> str:
    return "".join(dict.fromkeys(PROVENANCE_MARKS[issue][0] for issue in issues))


def _table_lines(table: StreamTable, results_dir: Path, curve_files: dict[str, dict[str, Path]]) -> list[str]:
    lines = [f"### {table.name} (version {table.version})" if table.analysis
             else f"## {table.name} (version {table.version})", ""]
    orders = "; ".join(f"order_seed {order}: `{', '.join(sorted(map(str, hashes)))}`"
                       for order, hashes in table.hashes_by_order().items())
    lines += [f"Stream definition `{table.definition}`"
              + (f", only stream hash `{table.split_hash}` (the data differs between runs of this definition)"
                 if table.split_hash else "") + f"; stream hash per class order: {orders}.", ""]
    captions = {"miou": "mIoU on S_t after each step", "pq": "PQ on S_t after each step",
                "curves": "mIoU on seen, old and new classes after each step", "pareto": "final mIoU vs memory",
                "forgetting": "forgetting with error bars"}
    for name, path in curve_files.get(table.slug, {}).items():
        lines += [f"![{captions[name]}]({_link(path, results_dir)})", ""]
    shown = [(m, k, title) for m, k, title in METRIC_COLUMNS
             if any(row[f"{m}_{k}"][2] for row in table.rows)]
    header = ["#", "method", "model", *[title for _, _, title in shown], "final mIoU 95% CI (images)",
              "Δ final mIoU (paired)", "memory", "time/step", "n", "config", "provenance", "runs", "plots"]
    numeric = {"#", "memory", "time/step", "n", *[title for _, _, title in shown]}
    alignment = ["---:" if title in numeric else "---" for title in header]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(alignment) + "|"]
    for rank, row in enumerate(table.rows, 1):
        runs = " ".join(f"[s{r.config.get('seed')}/o{r.order_seed}]({_link(r.path, results_dir)}/)" + _marks(issues)
                        for r, issues in zip(row["runs"], row["run_provenance"]))
        if row["superseded"]:  # repeats of a counted run (same seed, order, data): listed, not averaged
            runs += " (superseded repeats: " + " ".join(
                f"[{r.path.name}]({_link(r.path, results_dir)}/)" for r in row["superseded"]) + ")"
        plots_dir = row["runs"][0].path / "plots"
        plots = " ".join(f"[{name}]({_link(plots_dir / file, results_dir)})"
                         for name, file in (("R", "matrix_miou.png"), ("R PQ", "matrix_pq.png"),
                                            ("forgotten", "forgetting_classes.png"))
                         if (plots_dir / file).is_file())
        cells = ["–" if table.analysis else str(rank), row["label"].replace("|", "\\|"),
                 row["model"].replace("|", "\\|"), *[format_score(row[f"{m}_{k}"]) for m, k, _ in shown],
                 format_interval(row["miou_final_ci"]), format_difference(row["paired"]), human_bytes(row["memory_bytes"][0]), human_seconds(row["seconds_per_step"][0]),
                 str(row["n_runs"]), f"`{row['config_hash']}`", provenance_cell(row), runs, plots or "–"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _incomplete_lines(skipped: list[tuple[Path, str]], results_dir: Path) -> list[str]:
    """Failed runs with their reason, then unfinished ones (running, interrupted, unreadable)."""
    failed = [(path, reason.removeprefix("failed: ")) for path, reason in skipped if reason.startswith("failed: ")]
    other = [(path, reason) for path, reason in skipped if not reason.startswith("failed: ")]
    lines = []
    for title, entries, column in (("Failed runs", failed, "reason"), ("Unfinished runs", other, "state")):
        if entries:
            lines += [f"## {title}", "", f"| run | {column} |", "|---|---|"]
            for path, text in entries:
                link, cell = _link(path, results_dir), text.replace("|", "\\|")
                lines.append(f"| [{link}]({link}/) | {cell} |")
            lines.append("")
    return lines


def render_markdown(tables: list[StreamTable], results_dir: Path, curve_files: dict[str, dict[str, Path]],
                    skipped: list[tuple[Path, str]], stream_filter: str | None,
                    strict_excluded: int | None = None) -> str:
    """`skipped`: (folder, reason) of the runs that are not complete; `strict_excluded`: None without --strict,
    else how many complete runs --strict left out."""
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    total = sum(len(t.runs) for t in tables)
    lines = [
        "# Leaderboard", "",
        f"Built {now} by `python -m benchmark leaderboard{' --strict' if strict_excluded is not None else ''}` "
        f"from {total} complete run(s)"
        + (f" of stream `{stream_filter}`" if stream_filter else "")
        + f" ({len(skipped)} incomplete run(s) ignored{', listed at the end' if skipped else ''}"
        + (f"; {strict_excluded} run(s) without clean provenance left out by --strict" if strict_excluded is not None
           else "")
        + "). Scores in percent: mean ± sample std over the runs of a row "
        "(seeds × class orders), n = distinct runs (repeats of one seed and class order count once: the latest). "
        "forgetting = forgetting_max (Chaudhry), BWT = backward transfer, "
        "old / new = mIoU on S_{T-1} / C_T after the last step. memory = method state after the last step; "
        "time/step = learn + evaluation. Plots: the first run of the row. provenance: `ok` when every run of the "
        "row ran committed, registered, unchanged method code; marks are explained below the tables.", "",
    ]
    ranked = [t for t in tables if not t.analysis]
    analysis = [t for t in tables if t.analysis]
    for table in ranked:
        lines += _table_lines(table, results_dir, curve_files)
    if analysis:
        lines += [f"## {ANALYSIS_TITLE}", "",
                  "These runs gave the method ground truth on purpose (manifest `protocol.ground_truth_access`), "
                  "for analysis; they are not ranked and not comparable with the tables above.", ""]
        for table in analysis:
            lines += _table_lines(table, results_dir, curve_files)
    used = {issue for t in tables for row in t.rows for issue in row["provenance"]}
    if used:
        lines += ["Provenance marks:", ""]
        lines += [f"- {mark} {issue}: {why}" for issue, (mark, why) in PROVENANCE_MARKS.items() if issue in used]
        lines += ["", "`python -m benchmark leaderboard --strict` leaves marked runs out.", ""]
    lines += _incomplete_lines(skipped, results_dir)
    return "\n".join(lines)


def leaderboard_frame(tables: list[StreamTable], results_dir: Path) -> pd.DataFrame:
    """The CSV: one line per row of every table, means and stds in separate columns, full provenance."""
    records = []
    for table in tables:
        hashes = sorted({str(h) for hs in table.hashes_by_order().values() for h in hs})
        for rank, row in enumerate(table.rows, 1):
            record = {
                "stream": table.name, "stream_version": table.version, "stream_definition": table.definition,
                "stream_hashes": ";".join(hashes), "section": "analysis" if table.analysis else "ranking",
                "rank": "" if table.analysis else rank, "method": row["method"], "label": row["label"],
                "config_hash": row["config_hash"], "model": row["model"], "n_runs": row["n_runs"],
                "seeds": ";".join(map(str, row["seeds"])), "order_seeds": ";".join(map(str, row["order_seeds"])),
            }
            for metric, key, _ in METRIC_COLUMNS:
                mean, std, _ = row[f"{metric}_{key}"]
                record[f"{metric}_{key}_mean"], record[f"{metric}_{key}_std"] = mean, std
            record["miou_final_ci_low"], record["miou_final_ci_high"] = row["miou_final_ci"]
            reference, (mean, std, n) = row["paired"]
            record.update(paired_reference=reference, paired_final_diff_mean=mean, paired_final_diff_std=std,
                          paired_n=n)
            record["memory_bytes_mean"] = row["memory_bytes"][0]
            record["seconds_per_step_mean"] = row["seconds_per_step"][0]
            record["git_commits"] = ";".join(row["git"])
            record["runs"] = ";".join(_link(r.path, results_dir) for r in row["runs"])
            record["superseded_runs"] = ";".join(_link(r.path, results_dir) for r in row["superseded"])
            record["ground_truth_access"] = row["ground_truth_access"]
            record["provenance"] = ";".join(f"{issue}={count}" for issue, count in row["provenance"].items())
            records.append(record)
    return pd.DataFrame.from_records(records)


def write_curves(tables: list[StreamTable], results_dir: Path) -> dict[str, dict[str, Path]]:
    """Per stream table and metric, one figure of the score on S_t after each step, all rows together."""
    files: dict[str, dict[str, Path]] = {}
    for table in tables:
        models = {row["model"] for row in table.rows}
        for metric in ("miou", "pq"):
            curves = {(row["label"] + (f" · {row['model']}" if len(models) > 1 else "") + f" (n={row['n_runs']})"):
                      row["curves"][metric] for row in table.rows if metric in row["curves"]}
            if not curves:
                continue
            label = {"miou": "mIoU", "pq": "PQ"}[metric]
            title = (f"{table.name} v{table.version} ({table.definition}): {label} on all classes seen so far, "
                     "mean ± std over runs")
            path = results_dir / "plots" / f"{table.slug}-{metric}_seen.png"
            files.setdefault(table.slug, {})[metric] = save_figure(seen_curves_figure(curves, title, metric), path)
        files.setdefault(table.slug, {}).update(write_comparisons(table, results_dir, len(models) > 1))
    return files


def _row_name(row: dict, with_model: bool) -> str:
    return row["label"] + (f" · {row['model']}" if with_model else "") + f" (n={row['n_runs']})"


def write_comparisons(table: StreamTable, results_dir: Path, with_model: bool) -> dict[str, Path]:
    """The table's comparison figures: mIoU on all seen / old / new classes per step (every row on one chart),
    final mIoU vs memory (Pareto) and forgetting with error bars."""
    from benchmark.reporting.plots import comparison_curves_figure, forgetting_bars_figure, pareto_figure

    plots = results_dir / "plots"
    heading = f"{table.name} v{table.version} ({table.definition})"
    files = {}
    panels = {"all classes seen so far (S_t)": {}, "classes of earlier steps (S_{t-1})": {},
              "classes of step t (C_t)": {}}
    for row in table.rows:
        name = _row_name(row, with_model)
        if "miou" in row["curves"]:
            panels["all classes seen so far (S_t)"][name] = row["curves"]["miou"]
        for group, panel in (("old", "classes of earlier steps (S_{t-1})"), ("new", "classes of step t (C_t)")):
            curve = _curve(row["runs"], "miou", lambda run, g=group: (run.summary.get("old_new") or {}).get("miou", {}).get(g))
            if np.isfinite(curve[0]).any():
                panels[panel][name] = curve
    if any(panels.values()):
        title = f"{heading}: mIoU after each step, mean ± std over runs"
        files["curves"] = save_figure(comparison_curves_figure({k: v for k, v in panels.items() if v}, title),
                                      plots / f"{table.slug}-miou_seen_old_new.png")
    points = [(_row_name(row, with_model), row["memory_bytes"][0], row["memory_bytes"][1], *row["miou_final"][:2])
              for row in table.rows]
    if any(np.isfinite(p[3]) for p in points):
        files["pareto"] = save_figure(pareto_figure(points, f"{heading}: final mIoU vs memory (mean ± std)"),
                                      plots / f"{table.slug}-pareto.png")
    bars = [(_row_name(row, with_model), *row["miou_forgetting_max"]) for row in table.rows]
    if any(np.isfinite(b[1]) for b in bars):
        files["forgetting"] = save_figure(forgetting_bars_figure(bars, f"{heading}: forgetting (mean ± std over runs)"),
                                          plots / f"{table.slug}-forgetting.png")
    return files


def parse_options(argv: list[str]) -> dict:
    """key=value options (OPTIONS) and the flag --strict (options["strict"])."""
    options = {**OPTIONS, "strict": False}
    for item in argv:
        if item.startswith("-"):
            if item not in FLAGS:
                raise UserError(f"leaderboard: unknown flag '{item}'{suggest(item, list(FLAGS))}; "
                                "it takes stream=NAME results_dir=PATH bootstrap=N --strict")
            options[item.lstrip("-")] = True
            continue
        key, sep, value = item.partition("=")
        if not sep or key not in OPTIONS:
            what = f"unknown option '{key}'{suggest(key, list(OPTIONS))}" if sep else f"'{item}' is not key=value"
            raise UserError(f"leaderboard: {what}; it takes stream=NAME results_dir=PATH bootstrap=N --strict")
        options[key] = value
    return options


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    options = parse_options(argv)
    results_dir = Path(options["results_dir"])
    if not results_dir.is_dir():
        raise UserError(f"results_dir={results_dir} is not a folder; pass results_dir= where the runs were written")
    stream = options["stream"]
    runs, skipped = read_runs(results_dir, stream)
    if not runs:
        streams = sorted({p.parent.parent.parent.name for p in results_dir.glob("*/*/*/manifest.json")})
        where = f" of stream '{stream}'{suggest(stream, streams)}" if stream else ""
        raise UserError(f"no complete run{where} under {results_dir} ({len(skipped)} incomplete); "
                        "run one with `python -m benchmark run method=NAME stream=NAME`")
    digests: dict = {}  # current sha256 of method source files, shared by all runs
    left_out = [(run, run.provenance(digests)) for run in runs] if options["strict"] else []
    left_out = [(run, issues) for run, issues in left_out if issues]
    if left_out:
        excluded = {id(run) for run, _ in left_out}
        runs = [run for run in runs if id(run) not in excluded]
        if not runs:
            raise UserError(f"leaderboard --strict: all {len(left_out)} complete run(s) under {results_dir} lack "
                            f"clean provenance ({', '.join(sorted({i for _, issues in left_out for i in issues}))}); "
                            "rerun them from a clean, committed tree or leave out --strict")
    if not options["bootstrap"].isdigit():
        raise UserError(f"leaderboard: bootstrap={options['bootstrap']} must be a whole number (0: no intervals)")
    bootstrap = int(options["bootstrap"])
    tables = (stream_tables([r for r in runs if r.ground_truth_access is None], digests=digests, bootstrap=bootstrap)
              + stream_tables([r for r in runs if r.ground_truth_access is not None], analysis=True, digests=digests,
                              bootstrap=bootstrap))
    curve_files = write_curves(tables, results_dir)
    markdown = render_markdown(tables, results_dir, curve_files, skipped, stream,
                               len(left_out) if options["strict"] else None)
    atomic_write_text(results_dir / "LEADERBOARD.md", markdown)
    atomic_write_text(results_dir / "leaderboard.csv", leaderboard_frame(tables, results_dir).to_csv(index=False))
    from benchmark.results import COLUMNS, run_records  # the same records benchmark.results.load returns

    counted = [run for t in tables for row in t.rows for run in row["runs"]]
    records = pd.DataFrame.from_records([r for run in counted for r in run_records(run, results_dir)],
                                        columns=list(COLUMNS))
    atomic_write_text(results_dir / "results.csv", records.to_csv(index=False))
    print(f"leaderboard of {len(runs)} complete run(s) in {len(tables)} stream table(s): "
          f"{results_dir / 'LEADERBOARD.md'}, {results_dir / 'leaderboard.csv'}, {results_dir / 'results.csv'}")
    analysis = sum(len(t.runs) for t in tables if t.analysis)
    if analysis:
        print(f"{analysis} analysis run(s) that used ground truth on purpose are listed apart, not ranked")
    marked = sum(1 for t in tables for row in t.rows for issues in row["run_provenance"] if issues)
    if marked:
        print(f"{marked} run(s) marked for provenance (dirty tree, changed or unregistered source, or none "
              "recorded); --strict leaves them out")
    if options["strict"]:
        print(f"--strict: left out {len(left_out)} run(s) without clean provenance" + (":" if left_out else ""))
        for run, issues in left_out:
            print(f"  {run.path}: {', '.join(issues)}")
    superseded = sum(len(row["superseded"]) for t in tables for row in t.rows)
    if superseded:
        print(f"{superseded} repeated run(s) superseded by a later run of the same config, seed and class order "
              "(listed, not averaged)")
    if skipped:
        print(f"skipped {len(skipped)} incomplete run(s) ({sum(r.startswith('failed: ') for _, r in skipped)} failed):")
        for path, reason in skipped:
            print(f"  {path}: {reason}")
    return 0
