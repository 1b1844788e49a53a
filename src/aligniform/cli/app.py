"""The ``aligniform`` parser, built from the sub-command modules, and the entry point."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import analyze, compare, configs, demo, evaluate, report, study, sweep, train
from .errors import OneLineParser, option_names, option_spellings, run_handler

#: The sub-command modules, in the order ``aligniform --help`` lists them.
COMMANDS = (train, evaluate, demo, sweep, analyze, compare, study, report, configs)


def build_parser() -> argparse.ArgumentParser:
    """The ``aligniform`` argument parser with one sub-parser per command.

    Examples:
        >>> args = build_parser().parse_args(["train", "--epochs", "3", "--no-progress"])
        >>> args.command, args.epochs, args.progress
        ('train', 3, False)
    """
    parser = OneLineParser(
        prog="aligniform",
        description="Train and judge encoders on the hypersphere: alignment, uniformity, contrastive losses.",
    )
    # The sub-parsers are OneLineParsers too (add_subparsers uses the parser's class).
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    for subparser in commands.choices.values():
        # So that an error about a path can name the option that gave it (cli.errors.describe_os_error),
        # and a library error's backticked field names read as this command's flags (cli.errors.spell_options).
        subparser.set_defaults(option_names=option_names(subparser), option_spellings=option_spellings(subparser))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``aligniform`` with these arguments (default: the process's); return the exit code."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's parser, so the line names the command and its --help
        commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
        commands.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return run_handler(args)
