"""``aligniform sweep``: train many encoders over a grid of options (resumable)."""

from __future__ import annotations

import argparse

from ..sweep import MAX_RUNS
from .errors import UserError, path_argument


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sweep`` to the sub-commands."""
    parser = commands.add_parser("sweep", help="train many encoders over a grid of options (resumable)")
    parser.add_argument(
        "grid", type=path_argument, help="YAML grid file (sections base, grid, runs), or a shipped grid by name"
    )
    parser.add_argument(
        "--out", type=path_argument, required=True, help="sweep folder (one sub-folder per run, sweep.csv)"
    )
    parser.add_argument("--workers", type=int, default=1, help="runs at a time on this machine")
    parser.add_argument(
        "--emit-commands",
        action="store_true",
        help="print one `aligniform train` command per unfinished run (for a cluster scheduler)",
    )
    parser.add_argument(
        "--max-runs",
        type=int,
        default=MAX_RUNS,
        help=f"refuse a grid of more runs than this (default {MAX_RUNS:,}; counted before the grid is expanded)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run (or print the commands of) the sweep's unfinished runs."""
    from .._validation import check_output_path
    from ..sweep import load_grid, run_sweep

    if args.workers <= 0:
        raise UserError(f"--workers must be a positive integer, got {args.workers}")
    load_grid(args.grid, args.max_runs)  # a malformed or oversized grid is refused before the sweep folder is touched
    out = check_output_path(args.out, "--out", folder=True)
    run_sweep(args.grid, out, workers=args.workers, emit_commands=args.emit_commands, max_runs=args.max_runs)
    return 0
