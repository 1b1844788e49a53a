"""How the command line ends: errors users can fix as one line without a traceback, and the exit codes."""

from __future__ import annotations

import argparse
import sys

from ..config import ConfigError

#: Exit code of a training run stopped because its loss diverged.
EXIT_DIVERGED = 1
#: Exit code of an error the user can fix: bad options, missing data, a corrupt checkpoint.
EXIT_USER_ERROR = 2
#: Exit code after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error to print as one line (exit code :data:`EXIT_USER_ERROR`)."""


def run_handler(args: argparse.Namespace) -> int:
    """Run the parsed command's handler; print a fixable error as one line and return its exit code."""
    from ..data import DatasetError
    from ..train import CheckpointError, TrainingDiverged

    fixable = (ConfigError, DatasetError, CheckpointError, UserError, ValueError, FileNotFoundError, ImportError)
    try:
        return args.handler(args)
    except TrainingDiverged as error:
        print(f"aligniform: training stopped: {error}", file=sys.stderr)
        return EXIT_DIVERGED
    except fixable as error:
        print(f"aligniform {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("aligniform: interrupted; resume a training run with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
