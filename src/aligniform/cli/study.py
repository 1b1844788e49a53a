"""``aligniform study NAME``: reproduce one of the papers' studies."""

from __future__ import annotations

import argparse
import dataclasses

from ..studies import STUDY_NAMES  # the package loads each study on first use: listing them imports none
from .errors import UserError, path_argument, spell_options


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``study`` to the sub-commands."""
    parser = commands.add_parser("study", help="reproduce a paper's study: " + ", ".join(STUDY_NAMES))
    parser.add_argument("name", choices=STUDY_NAMES)
    parser.add_argument("--out", type=path_argument, help="output folder (json, markdown table, figures, runs)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a study option (lists as a,b,c); see --list-options",
    )
    parser.add_argument("--list-options", action="store_true", help="print the study's options and defaults")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Print the study's options, or run it with the --set overrides.

    Every option is read and checked (:func:`~aligniform.studies.common.build_options`) before ``--out`` is
    looked at, so a refused option leaves the file system as it was. Errors name a study option
    ``--set NAME`` (through ``args.handler_spellings``, see :func:`aligniform.cli.errors.spell_options`).
    """
    from .._validation import check_output_path
    from ..studies import load_study
    from ..studies.common import build_options
    from ..studies.options import parse_study_options

    run_study, options_class = load_study(args.name)
    if args.list_options:
        for field in dataclasses.fields(options_class):
            print(f"{field.name} = {field.default!r}")
        return 0
    fields = {field.name for field in dataclasses.fields(options_class)}
    args.handler_spellings = lambda name: f"--set {name}" if name in fields else None
    try:
        overrides = parse_study_options(options_class, args.set)
        build_options(options_class, None, overrides)  # every check, before anything is written
    except ValueError as error:
        message = spell_options(error, args)
        # Messages that name their option without backticks still read as a --set option.
        raise UserError(message if "--set " in message else f"--set {message}") from None
    if args.out is None:
        raise UserError("study needs --out DIR")
    run_study(check_output_path(args.out, "--out", folder=True), **overrides)
    return 0
