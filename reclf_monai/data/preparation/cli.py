"""What the ``scripts/prepare_*.py`` command lines share: common options, errors, the summary."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import DataError
from .reporting import PreparationReport


def build_parser(description: str, expected_layout: str) -> argparse.ArgumentParser:
    """Parser with ``--root`` and ``--output``; `expected_layout` is shown by ``--help``."""
    parser = argparse.ArgumentParser(
        description=description,
        epilog=expected_layout,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", type=Path, required=True, help="folder of the official download (layout below)")
    parser.add_argument(
        "--output",
        type=Path,
        required=True,
        help="folder for the datalists (and any masks); image paths in the datalists are relative to it",
    )
    return parser


def add_seed_option(parser: argparse.ArgumentParser, default: int, what: str) -> None:
    parser.add_argument("--seed", type=int, default=default, help=f"random seed for {what} (default: %(default)s)")


def add_skip_missing_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--skip-missing-images",
        action="store_true",
        help="leave out (and count) listed images whose file is missing instead of stopping",
    )


def run(parser: argparse.ArgumentParser, prepare: Callable[[argparse.Namespace], PreparationReport],
        argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run `prepare`, print the statistics line; exit status 2 on bad input data."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = prepare(args)
    except DataError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    for path in report.outputs:
        logging.getLogger(parser.prog).info("wrote %s", path)
    print(report.statistics_line())
    return 0
