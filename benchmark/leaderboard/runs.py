"""Reading run folders: the one place both `benchmark.results.load` and the leaderboard read runs from.

A run folder `<results_dir>/<stream>/<method>/<run-id>/` holds config.yaml, manifest.json and summary.json
(benchmark/run/writer.py writes them; the manifest is read through `benchmark.run.manifest.Manifest`).
`read_runs` returns the complete ones as `Run`s and says why it skipped every other one; `deduplicate` picks,
of the runs repeating one experiment (same resolved config, seed, class order and data), the latest
finished; `Run.variant` and `config_identity` say which row a run belongs to; `provenance_issues` says what
keeps a run from being traced to committed, registered code. benchmark.leaderboard.records turns a run into
the long records every leaderboard number is read from.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from omegaconf import OmegaConf

from benchmark.config import EvalConfig, ModelConfig, ProtocolConfig, config_file
from benchmark.provenance import REPO_ROOT, file_sha256, source_digest
from benchmark.run.manifest import Manifest

# provenance problems of a run, their footnote marks and explanations (in this order in every cell)
PROVENANCE_MARKS = {
    "dirty tree": ("†", "the git working tree had uncommitted or untracked changes when the run started or resumed"),
    "source changed since run": ("‡", "the method's source files differ now from their digest in the manifest"),
    "source changed during run": ("‡", "the run was resumed with other method source files than it started with"),
    "unregistered source": ("§", "the method's module is not in this repository's methods/ or baselines/"),
    "no provenance": ("?", "the manifest records no method source digest, or neither a git state nor an installed "
                           "distribution (an older run)"),
    "foreign code": ("¶", "modules from COVSEG_PATH or an entry point were imported (manifest `plugins`), whether or "
                          "not they registered the method (under isolate=true: in the method's worker only)"),
}
EVAL_KEYS = ("vocabulary", "miou_mode", "max_images")  # evaluation settings that change the numbers
# config keys left out of a row's identity: they vary between the runs of a row (seed, class order) or change
# where and how fast a run goes, never its numbers
EXECUTION_KEYS = ("seed", "stream.order", "stream.order_seed", "run_id", "results_dir", "quiet", "debug", "resume",
                  "device", "threads", "logger", "data.root", "data.on_error", "model.batch_size", "model.cache_dir",
                  "eval.batch_size", "eval.initial", "name", "tags", "isolate_timeout_s", "checkpoint")
# config keys shown by a symbol in variant labels (`avalanche/EWC λ=1000`)
LABEL_SYMBOLS = {"lambda": "λ", "ewc_lambda": "λ", "si_lambda": "λ", "alpha": "α", "tau": "τ"}


def short_hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:8]


def non_default(values: dict, defaults: dict) -> list[str]:
    """`key=value` for every key whose value differs from `defaults` (or is not in it), in key order."""
    missing = object()
    return [f"{key}={values[key]}" for key in sorted(values)
            if key != "name" and defaults.get(key, missing) != values[key]]


def _leaves(values: dict, prefix: str = "") -> dict:
    """{"strategy_args.ewc_lambda": 1000, ...}: the leaves of nested dicts by dotted path."""
    leaves = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            leaves.update(_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def _compact(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(_compact, value)) + "]"
    return str(value)


def compact_label(values: dict, defaults: dict) -> str:
    """`name[/strategy] key=value ...`: the config's name, its `strategy` (avalanche's) and every leaf that differs
    from `defaults`, by its last key (LABEL_SYMBOLS: λ, α, τ), e.g. `avalanche/EWC λ=1000`, `knnclip k=32`."""
    leaves, default_leaves = _leaves(values), _leaves(defaults)
    label = str(values.get("name"))
    if isinstance(values.get("strategy"), str):
        label += f"/{values['strategy']}"
    missing = object()
    changed = [f"{LABEL_SYMBOLS.get(key.rsplit('.', 1)[-1], key.rsplit('.', 1)[-1])}={_compact(value)}"
               for key, value in sorted(leaves.items())
               if key not in ("name", "strategy") and default_leaves.get(key, missing) != value]
    return " ".join([label, *changed])


@functools.lru_cache(maxsize=None)
def _yaml_defaults(group: str, name: str) -> dict:
    path = config_file(group, name)
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True) if path is not None else {}


def config_identity(config: dict) -> dict:
    """The resolved config without EXECUTION_KEYS: what a row's runs share. An older config without `protocol`
    ran the default protocol, and gets its keys, so its runs share a row with today's."""
    identity = json.loads(json.dumps(config, default=str))
    identity.setdefault("protocol", asdict(ProtocolConfig()))
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
    manifest: Manifest
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

    def variant(self) -> str:
        """The run's short label: its `name=` if set, else the method's compact label (`compact_label`) with the
        evaluation settings that differ from the defaults, a CSS protocol other than covseg and any ground truth
        access."""
        if self.config.get("name"):
            return str(self.config["name"])
        method = self.method_config
        label = compact_label(method, _yaml_defaults("method", method["name"]))
        eval_changed = non_default(self.eval_setting(), {k: getattr(EvalConfig(), k) for k in EVAL_KEYS})
        access = self.ground_truth_access
        return (label + (f" [eval {', '.join(eval_changed)}]" if eval_changed else "")
                + (f" [protocol {self.protocol}]" if self.protocol != "covseg" else "")
                + (f" [ground truth: {access}]" if access else "") + (" [isolated]" if self.isolated else "")
                + (" [public draw]" if self.manifest.public_draw else "")
                + (" [external loop]" if self.manifest.loop == "external" else ""))  # StreamEvaluator

    def model_label(self) -> str:
        model = self.config["model"]
        return compact_label(model, {**OmegaConf.to_container(OmegaConf.structured(ModelConfig)),
                                     **_yaml_defaults("model", model["name"])})

    def eval_setting(self) -> dict:
        return {key: self.config.get("eval", {}).get(key) for key in EVAL_KEYS}

    @property
    def ground_truth_access(self) -> str | None:
        """The manifest's `protocol.ground_truth_access` (None: the sealed protocol, also for older manifests)."""
        return self.manifest.ground_truth_access

    @property
    def protocol(self) -> str:
        """The CSS protocol preset the run followed (covseg: the default, also for older configs without `protocol`)."""
        return (self.config.get("protocol") or {}).get("name", "covseg")

    @property
    def isolated(self) -> bool:
        """The method ran in its own worker process (isolate=true: manifest `execution.isolate`, in older run
        folders `protocol.isolate`)."""
        return self.manifest.isolate

    @property
    def config_hash(self) -> str:
        return short_hash(config_identity(self.config))

    @property
    def validation_set(self) -> tuple[str | None, int | None]:
        """(digest of the scored validation image ids, their count) from the manifest's `data`; (None, None)
        for runs older than that record. Runs over different validation sets are never averaged or paired."""
        data = self.manifest.data or {}
        return data.get("validation_digest"), data.get("validation_images")

    @property
    def has_initial(self) -> bool:
        """Whether the run evaluated the untouched method first (eval.initial): FWT and learning gain need it."""
        return bool(self.summary.get("initial"))

    def row_key(self) -> tuple:
        return self.method_config["name"], self.config_hash, self.ground_truth_access, self.validation_set[0]

    def repeat_key(self) -> tuple:
        """Runs of one row with equal keys repeat one experiment (same seed, class order and data)."""
        return str(self.config.get("seed")), str(self.order_seed), str(self.manifest.stream_hash)

    def experiment_key(self) -> tuple:
        """Runs with equal keys repeat one experiment: the same row and repeat key."""
        return self.row_key() + self.repeat_key()

    def stream_metrics(self) -> dict[str, float]:
        """{"miou.final": value, ...}: the summary's stream metrics under today's names (NaN for null), the
        values of the run's `group == "stream"` records of benchmark.results."""
        if "_stream_metrics" not in self.__dict__:
            self.__dict__["_stream_metrics"] = {
                f"{score}.{key}": number(value) for score, values in (self.summary.get("metrics") or {}).items()
                for key, value in current_names(values).items()}
        return self.__dict__["_stream_metrics"]

    def final_class_scores(self) -> list[dict]:
        """class_scores.csv's rows of the last step ({"class_id", "class", "learned_at_step", "iou", ...}, IoU
        NaN without ground truth); [] when the run has no such file."""
        try:
            with open(self.path / "class_scores.csv", newline="") as handle:
                rows = list(csv.DictReader(handle))
        except OSError:
            return []
        last = max((int(row["step"]) for row in rows), default=None)
        return [row for row in rows if int(row["step"]) == last]

    @property
    def feature_cache(self) -> str | None:
        """"warm" when most per-image features came from the disk cache (manifest `passes.disk_cache_hits` vs
        `disk_cache_writes`), else "cold"; None for runs that predate the record. Warm runs' times are not
        comparable with cold ones (kNN-CLIP's evaluation: 0.2-0.3 s a step warm, 0.7-2.6 s cold)."""
        passes = self.manifest.passes or {}
        hits, writes = passes.get("disk_cache_hits"), passes.get("disk_cache_writes")
        if hits is None or writes is None:
            return None
        return "warm" if hits > writes else "cold"

    @property
    def finished(self) -> str:
        return str(self.manifest.finished or self.manifest.started or "")

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


def provenance_issues(manifest: Manifest, digests: dict | None = None) -> list[str]:
    """What keeps a run from being traced to committed, registered code; see PROVENANCE_MARKS."""
    digests = {} if digests is None else digests
    source = manifest.method_source
    git = manifest.git or {}
    resumed = [r for r in manifest.resumed or [] if isinstance(r, dict)]
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
    if not source or (git.get("dirty") is None and not git.get("distribution")):  # a wheel: its distribution
        issues.append("no provenance")
    if manifest.plugins:
        issues.append("foreign code")
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
            manifest = Manifest.read(manifest_path)
        except (OSError, ValueError) as exc:
            skipped.append((run_dir, f"unreadable manifest.json ({exc})"))
            continue
        if manifest.status == "failed":
            skipped.append((run_dir, f"failed: {manifest.failure or 'no reason recorded'}"))
            continue
        if manifest.status != "complete":
            skipped.append((run_dir, manifest.state_line()))
            continue
        try:
            summary = json.loads((run_dir / "summary.json").read_text())
            config = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=True)
        except (OSError, ValueError) as exc:
            skipped.append((run_dir, f"unreadable summary.json or config.yaml ({exc})"))
            continue
        runs.append(Run(run_dir, manifest, config, summary))
    return runs, skipped



def deduplicate(runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """(distinct, superseded): of the runs repeating one experiment (`Run.experiment_key`), the latest finished
    counts; the others are superseded (kept on disk and listed, never averaged in)."""
    latest: dict[tuple, Run] = {}
    for run in sorted(runs, key=lambda r: (r.finished, r.path.name)):
        latest[run.experiment_key()] = run
    kept = {id(run) for run in latest.values()}
    return [r for r in runs if id(r) in kept], [r for r in runs if id(r) not in kept]


def number(value) -> float:
    return float("nan") if value is None else float(value)


def current_names(metrics: dict) -> dict:
    """A summary's stream metrics under today's names. Older summaries (without `previous`) had `old` / `new`
    for what is now `previous` / `last` (S_{T-1} / C_T); `old` / `new` are now MiB's and PLOP's, equal to
    `base` / `novel`."""
    if "old" not in metrics or "previous" in metrics:
        return metrics
    renamed = {**metrics, "previous": metrics["old"], "last": metrics["new"]}
    renamed.update(old=metrics.get("base"), new=metrics.get("novel"))
    return renamed


def step_groups(summary: dict) -> dict:
    """{metric: {"previous": [...], "last": [...]}}: the per-step scores on S_{t-1} and C_t (`old_new`, with
    groups old / new, in older summaries)."""
    if "previous_last" in summary:
        return summary["previous_last"]
    legacy = summary.get("old_new") or {}
    return {metric: {{"old": "previous", "new": "last"}.get(g, g): v for g, v in groups.items()}
            for metric, groups in legacy.items()}
