"""``aligniform report``: one self-contained HTML report of runs and sweeps."""

from __future__ import annotations

import argparse
from pathlib import Path

from .errors import path_argument


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``report`` to the sub-commands."""
    parser = commands.add_parser("report", help="one self-contained HTML report of runs or a sweep")
    parser.add_argument("run_dirs", type=path_argument, nargs="+", help="run folders and/or sweep folders")
    parser.add_argument(
        "-o", "--output", "--out", type=path_argument, default=Path("report.html"), help="the HTML file to write"
    )
    parser.add_argument("--title", default="aligniform report", help="the report's title")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Write the report and print its path (alone, so scripts can use it).

    :func:`~aligniform.report.write_report` checks ``-o`` before any work (its `out` is this command's
    ``-o/--output``); an error while writing names the file and leaves an existing one as it was.
    """
    from ..report import write_report

    args.handler_spellings = {"out": "-o/--output"}
    print(write_report(args.run_dirs, args.output, title=args.title))
    return 0
