"""Leaderboard statistics: runs grouped into stream tables and rows, and each row's numbers.

A stream table holds the runs of one stream definition (and, only if the data changed under it, one stream
hash); a row the distinct runs (`runs.deduplicate`) of one resolved configuration. Each row gets the mean ±
sample std over its runs of every registered stream metric (`metric_columns`), memory, time per step and
per-step curves, a 95% bootstrap interval of its final mIoU over the validation images, and a paired
difference to a reference row.
The grouping rules are described in benchmark/leaderboard/command.py.
"""
from __future__ import annotations

import math
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.evaluation.stream_metrics import SCORE_LABELS, StreamMetric, stream_metrics
from benchmark.leaderboard.runs import PROVENANCE_MARKS, Run, config_identity, deduplicate, short_hash


@dataclass(frozen=True)
class MetricColumn:
    """A stream metric's column of the leaderboard: one score (miou, pq) of one registered metric, or the
    metric's difference to the paired zero-shot run (`versus_zero_shot`); rows hold (mean, std, n) at `field`."""

    score: str
    key: str  # the summary's metric name, or the versus_zero_shot name
    title: str
    metric: StreamMetric
    versus_zero_shot: bool = False

    @property
    def field(self) -> str:
        return f"{self.score}_{self.key}"


def metric_columns() -> list[MetricColumn]:
    """The columns of every registered stream metric, in registration order (a difference to zero-shot right
    after its metric); a table shows those some row has a value for."""
    columns = []
    for metric in stream_metrics():
        for score in metric.scores:
            title = metric.label.replace("{score}", SCORE_LABELS.get(score, score))
            columns.append(MetricColumn(score, metric.name, title, metric))
            if metric.versus_zero_shot:
                columns.append(MetricColumn(score, metric.versus_zero_shot, metric.versus_zero_shot.replace("_", " "),
                                            metric, versus_zero_shot=True))
    return columns


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

    @property
    def draw(self) -> str | None:
        """Which data a table split by stream hash holds, in words: `draw 3f2a1b2c… (public draw)` (the demo:
        another secret draws other images) or `data 3f2a1b2c…` (a dataset: other files); None when not split."""
        if not self.split_hash:
            return None
        short = self.split_hash[:8] + ("…" if len(self.split_hash) > 8 else "")
        if not all(str(run.config["stream"].get("dataset", "")).startswith("demo") for run in self.runs):
            return f"data {short}"
        return f"draw {short} ({'public' if all(run.manifest.public_draw for run in self.runs) else 'private'} draw)"

    def hashes_by_order(self) -> dict:
        hashes = defaultdict(set)
        for run in self.runs:
            hashes[run.order_seed].add(run.manifest.stream_hash)
        return dict(sorted(hashes.items(), key=lambda item: _order(item[0])))


def stream_tables(runs: list[Run], analysis: bool = False, digests: dict | None = None,
                  bootstrap: int = 0) -> list[StreamTable]:
    """The tables of `runs`; `analysis`: they used ground truth on purpose (unranked tables); `bootstrap`:
    resamples of the validation images for the final mIoU's confidence interval (0: none)."""
    by_definition = defaultdict(list)
    for run in runs:
        by_definition[(run.manifest.stream, run.manifest.stream_version, run.stream_definition)].append(run)
    tables = []
    for (name, version, definition), members in sorted(by_definition.items(), key=lambda item: str(item[0])):
        table = StreamTable(name, version, definition, members, analysis=analysis)
        if all(len(hashes) == 1 for hashes in table.hashes_by_order().values()):
            tables.append(table)
            continue
        by_hash = defaultdict(list)
        for run in members:
            by_hash[run.manifest.stream_hash].append(run)
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


def curve(runs: list[Run], metric: str, values=None) -> tuple[np.ndarray, np.ndarray]:
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




def versus_zero_shot_by_run(runs: list[Run], score: str, key: str) -> dict[Path, float]:
    """Per run: its stream metric `score.key` minus that of the zero-shot run on the same stream (hash), model,
    seed, evaluation settings and validation set (for forgetting: the part not explained by the vocabulary's
    growth, benchmark.evaluation.stream_metrics); NaN without such a zero-shot run. Of repeated zero-shot runs
    the latest counts."""
    def pairing(run: Run) -> tuple:
        identity = config_identity(run.config)  # batch sizes and cache folders do not break a pair
        return (run.manifest.stream_hash, short_hash(identity.get("model")), run.config.get("seed"),
                short_hash(identity.get("eval")), run.validation_set[0])

    zero_shot = {}
    for run in sorted(runs, key=lambda r: (r.finished, r.path.name)):
        if run.method_config["name"] == "zeroshot":
            zero_shot[pairing(run)] = _metric(run, score, key)
    return {run.path: _metric(run, score, key) - zero_shot.get(pairing(run), float("nan")) for run in runs}


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
    classes = sorted({c for step in runs[0].manifest.step_classes or [] for c in step})
    if not classes or len({int(c["image_count"]) for c in counts}) != 1:
        return none
    replicates = bootstrap_miou(counts, classes, samples)
    tail = 100 * (1 - level) / 2
    return float(np.nanpercentile(replicates, tail)), float(np.nanpercentile(replicates, 100 - tail))


def add_paired_differences(rows: list[dict]) -> None:
    """row["paired"] = (reference label, (mean, std, n)): final mIoU minus that of the reference row over the
    pairs of runs on the same stream hash, seed and class order. The reference is the zero-shot row of the same
    model, evaluation settings and validation set (the floor every continual method is compared with), else the
    first row over the same validation set."""
    for row in rows:
        same_images = [r for r in rows if r["validation_set"] == row["validation_set"]]
        reference = next((r for r in same_images if r["method"] == "zeroshot" and r["model"] == row["model"]
                          and r["runs"][0].eval_setting() == row["runs"][0].eval_setting()), same_images[0])
        if reference is row:
            row["paired"] = (reference["label"], (float("nan"), float("nan"), 0))
            continue
        by_key = {run.repeat_key(): run for run in reference["runs"]}
        differences = [_metric(run, "miou", "final") - _metric(by_key[run.repeat_key()], "miou", "final")
                       for run in row["runs"] if run.repeat_key() in by_key]
        row["paired"] = (reference["label"], mean_std(differences))




def aggregate_rows(runs: list[Run], digests: dict | None = None) -> list[dict]:
    """One row per resolved configuration (and ground truth access), repeated runs counted once, best final
    mIoU first."""
    digests = {} if digests is None else digests
    groups = defaultdict(list)
    for run in runs:
        groups[run.row_key()].append(run)
    columns = metric_columns()
    versus = {column.field: versus_zero_shot_by_run(runs, column.score, column.metric.name)
              for column in columns if column.versus_zero_shot}
    several_validation_sets = len({run.validation_set for run in runs}) > 1
    rows = []
    for (method, config_hash, access, _), group in groups.items():
        members, superseded = deduplicate(group)
        # a repeat without the initial evaluation does not replace one with it in the columns that need it
        with_initial, _ = deduplicate([r for r in group if r.has_initial])
        members.sort(key=lambda r: (_order(r.config.get("seed")), _order(r.order_seed), r.path.name))
        first = members[0]
        digest, images = first.validation_set
        row = {
            "method": method, "config_hash": config_hash,
            "label": first.variant()
            + (f" [validation set {digest or 'unrecorded'}: {images or '?'} images]" if several_validation_sets else ""),
            "ground_truth_access": access, "isolated": all(r.isolated for r in members),
            "validation_set": first.validation_set,
            "model": first.model_label(), "n_runs": len(members),
            "seeds": sorted({r.config.get("seed") for r in members}, key=_order),
            "order_seeds": sorted({r.order_seed for r in members}, key=_order),
            "runs": members, "superseded": sorted(superseded, key=lambda r: r.path.name),
        }
        for column in columns:
            source = with_initial if column.metric.needs_initial and not column.versus_zero_shot else members
            row[column.field] = mean_std([versus[column.field][r.path] if column.versus_zero_shot
                                          else _metric(r, column.score, column.key) for r in source])
        row["memory_bytes"] = mean_std([float((r.summary.get("memory_bytes") or [float("nan")])[-1]) for r in members])
        row["seconds_per_step"] = mean_std([_seconds_per_step(r) for r in members])
        # cold and warm feature caches apart (None: not recorded), so a warm rerun never passes for a faster method
        row["seconds_per_step_by_cache"] = {
            state: mean_std([_seconds_per_step(r) for r in members if r.feature_cache == state])
            for state in ("cold", "warm", None) if any(r.feature_cache == state for r in members)}
        row["curves"] = {metric: curve(members, metric) for metric in ("miou", "pq")
                         if any(r.summary.get("seen", {}).get(metric) for r in members)}
        row["git"] = sorted({(r.manifest.git or {}).get("commit") or "unknown" for r in members})
        row["run_provenance"] = [r.provenance(digests) for r in members]
        row["provenance"] = {issue: sum(issue in issues for issues in row["run_provenance"])
                             for issue in PROVENANCE_MARKS if any(issue in i for i in row["run_provenance"])}
        rows.append(row)
    labels = [(row["label"], row["model"]) for row in rows]
    for row in rows:  # two configurations named alike (name=, or labels that leave a difference out): add the hash
        if labels.count((row["label"], row["model"])) > 1:
            row["label"] += f" #{row['config_hash']}"
    rows.sort(key=lambda row: (math.isnan(row["miou_final"][0]), -np.nan_to_num(row["miou_final"][0]), row["label"]))
    return rows


def class_table(table: StreamTable) -> pd.DataFrame:
    """Per class of the stream (with ground truth after the last step): its id, name, the step that taught it
    ("2"; "0/3" when the class orders of the table's runs differ) and per row (by label, and model when the
    table has several) the mean final IoU over the row's runs (NaN where no run scored it)."""
    with_model = len({row["model"] for row in table.rows}) > 1
    classes: dict[int, dict] = {}
    for row in table.rows:
        column = row["label"] + (f" · {row['model']}" if with_model else "")
        scores = defaultdict(list)
        for run in row["runs"]:
            for record in run.final_class_scores():
                if not float(record.get("gt_pixels") or 0):  # no ground truth in validation: no score to compare
                    continue
                class_id = int(record["class_id"])
                entry = classes.setdefault(class_id, {"class_id": class_id, "class": record["class"], "steps": set()})
                entry["steps"].add(int(record["learned_at_step"]))
                scores[class_id].append(float(record["iou"]) if record["iou"] else float("nan"))
        for class_id, values in scores.items():
            classes[class_id][column] = mean_std(values)[0]
    for entry in classes.values():
        entry["taught at step"] = "/".join(map(str, sorted(entry.pop("steps"))))
    columns = ["class_id", "class", "taught at step"] + [row["label"] + (f" · {row['model']}" if with_model else "")
                                                        for row in table.rows]
    ordered = sorted(classes.values(), key=lambda e: (int(e["taught at step"].split("/")[0]), e["class_id"]))
    return pd.DataFrame.from_records(ordered, columns=columns)
