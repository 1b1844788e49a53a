"""``aligniform report``: one self-contained HTML report of runs and sweeps."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``report`` to the sub-commands."""
    parser = commands.add_parser("report", help="one self-contained HTML report of runs or a sweep")
    parser.add_argument("run_dirs", type=Path, nargs="+", help="run folders and/or sweep folders")
    parser.add_argument(
        "-o", "--output", "--out", type=Path, default=Path("report.html"), help="the HTML file to write"
    )
    parser.add_argument("--title", default="aligniform report", help="the report's title")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Write the report and print its path (alone, so scripts can use it)."""
    from .._validation import check_output_path
    from ..report import write_report

    output = check_output_path(args.output, "-o/--output")
    print(write_report(args.run_dirs, output, title=args.title))
    return 0
