"""python -m benchmark SUBCOMMAND ...

    run method=NAME stream=NAME [key=value ...]   run one method over one stream (configs/, Hydra overrides);
                                                  run -h: groups, settings, the method's keys; --cfg job: the config
    list [methods|streams|models] [-v]            what can be chosen; -v: descriptions, every method's keys
    streams show NAME                             a stream's steps, classes, image counts and hash
    prepare DATASET --root ROOT [--src RAW]       convert a dataset release to the layout the readers use (-h: which
                                                  datasets take --src, the raw release kept elsewhere)
    export-predictions --out DIR [key=value ...]  the base model's outputs on a stream's images, for model=cached
    export-fcclip --config-file C --weights W --out DIR [key=value ...]
                                                  FC-CLIP's outputs (inside an FC-CLIP checkout with detectron2)
    report RUN_DIR                                recompute a finished run's metrics and tables from raw stats
    show RUN_DIR --out DIR [--images N] [--steps initial,0,1] [--format png|pdf] [--opacity A] [--dpi N]
                                                  image, ground truth and predictions as named colour overlays;
                                                  steps other than the last need runs with checkpoint.keep=all
    leaderboard [--strict] [stream=NAME ...]      tables over every run under results/
    miou / pq                                     the evaluator on folders of predictions (drop-in tools)
    perf eval|data|retrieval|startup|predictions|stream|isolate
                                                  throughput (or bytes) against references measured in the same run
    new-method NAME [--dir DIR]                   scaffold a method of one's own as a package (module, YAML, test)

User errors print one line and exit with code 2 (add debug=true or --debug for the traceback). A method whose
code raises prints one line and the method's own frames, and exits with code 1 (debug=true: every frame).
"""
from __future__ import annotations

import importlib
import os
import shlex
import sys
from pathlib import Path

from benchmark.errors import MethodError, UserError
from benchmark.registry import suggest
from benchmark.run.state import Terminated

# subcommand -> "module:function" taking the remaining argv and returning an exit code
SUBCOMMANDS = {
    "run": "benchmark.cli:run_main",
    "list": "benchmark.cli:list_main",
    "streams": "benchmark.cli:streams_main",
    "prepare": "benchmark.data.prepare:main",
    "export-predictions": "benchmark.cli:export_main",
    "export-fcclip": "benchmark.exporters.fcclip:main",
    "report": "benchmark.evaluation.report:main",
    "show": "benchmark.show:main",
    "leaderboard": "benchmark.leaderboard.command:main",
    "miou": "benchmark.evaluation.tools:miou_main",
    "pq": "benchmark.evaluation.tools:pq_main",
    "perf": "benchmark.perf:main",
    "new-method": "benchmark.scaffold:main",
}


# The harness's own top-level packages. Their names are fixed by the project layout (benchmark/ streams/ baselines/
# methods/), so a folder of the same name in the working directory would be imported in their place: refuse that.
OWN_PACKAGES = ("streams", "baselines", "methods")


def check_not_shadowed() -> None:
    """One line naming the folder when `streams`, `baselines` or `methods` resolves outside this installation
    (e.g. a researcher's own `methods/` in the current directory); find_spec locates without importing."""
    from importlib.util import find_spec

    home = Path(__file__).resolve().parent.parent
    for name in OWN_PACKAGES:
        spec = find_spec(name)
        where = None if spec is None else (spec.origin or next(iter(spec.submodule_search_locations or []), None))
        location = None if where is None else Path(where).resolve()  # .../methods/__init__.py or .../methods
        if location is None or home not in (location.parent, location.parent.parent):
            raise UserError(f"the package '{name}' resolves to {where}, not to covseg-bench's ({home / name}): a "
                            f"folder or module named '{name}' on sys.path (often the current directory) shadows it; "
                            f"rename it or run from another directory (own methods: COVSEG_PATH or an entry point)")


def resume_hint(argv: list[str]) -> str:
    """For an interrupted single run: the command that continues it after its last completed step."""
    if not argv or argv[0] != "run" or {"-m", "--multirun", "-h", "--help", "--cfg"} & set(argv):
        return ""
    program = "covseg" if Path(sys.argv[0]).name == "covseg" else "python -m benchmark"
    kept = [shlex.quote(a) for a in argv[1:] if not a.startswith("resume=")]
    return f"; continue it with: {program} run {' '.join([*kept, 'resume=auto'])}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or "debug=true" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        if not argv or argv[0] in ("-h", "--help", "help"):
            print(__doc__)
            return 0
        command, rest = argv[0], argv[1:]
        check_not_shadowed()
        if command not in SUBCOMMANDS:
            raise UserError(f"unknown subcommand '{command}'{suggest(command, list(SUBCOMMANDS))}; "
                            f"available: {', '.join(SUBCOMMANDS)}")
        module_name, function = SUBCOMMANDS[command].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            raise UserError(f"'{command}' is not available in this version yet") from None
        return int(getattr(module, function)(rest) or 0)
    except MethodError as exc:  # the same report whether the method ran here or in its worker
        print(exc.report(debug), file=sys.stderr)
        return 1
    except UserError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted{resume_hint(argv)}", file=sys.stderr)
        return 130
    except Terminated as exc:  # SIGTERM / SIGHUP during a run (benchmark.run.state): the shell's code for it
        print(f"interrupted by {exc}{resume_hint(argv)}", file=sys.stderr)
        return 128 + exc.signum
    except BrokenPipeError:  # output piped into a reader that stopped early (`| head`): not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (the interpreter flushes stdout at exit)
        return 0


if __name__ == "__main__":
    sys.exit(main())
