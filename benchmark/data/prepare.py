"""`python -m benchmark prepare NAME`: convert a dataset release into the detectron2 layout the readers use,
producing the same files as the community's scripts (MaskFormer / ODISE / FC-CLIP `datasets/prepare_*.py`)
so results stay comparable with published numbers. Each command lives in its dataset's module under
`benchmark/data/datasets/`; `prepare --help` lists them.

Every file is written to a temporary name in its final folder and renamed (a killed run never leaves a
half-written file); existing outputs are kept unless `--overwrite`, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse

from benchmark.data.datasets import PREPARE_COMMANDS, default_data_root
from benchmark.errors import DataError, UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark prepare", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    for name in PREPARE_COMMANDS.names():
        command = PREPARE_COMMANDS.get(name)
        subparser = sub.add_parser(name, help=command.help)
        subparser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
        subparser.add_argument("--overwrite", action="store_true", help="rewrite files that already exist")
        command.add_arguments(subparser)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "src", None) is not None and not args.src.is_dir():
        raise DataError(f"--src {args.src} is not a folder")
    if args.root is None:
        args.root = default_data_root()
    if args.workers < 1:
        raise UserError(f"--workers {args.workers}: must be at least 1")
    return PREPARE_COMMANDS.get(args.dataset).run(args)
