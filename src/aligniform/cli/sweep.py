"""``aligniform sweep``: train many encoders over a grid of options (resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sweep`` to the sub-commands."""
    parser = commands.add_parser("sweep", help="train many encoders over a grid of options (resumable)")
    parser.add_argument("grid", type=Path, help="YAML grid file (sections base, grid, runs)")
    parser.add_argument("--out", type=Path, required=True, help="sweep folder (one sub-folder per run, sweep.csv)")
    parser.add_argument("--workers", type=int, default=1, help="runs at a time on this machine")
    parser.add_argument(
        "--emit-commands",
        action="store_true",
        help="print one `aligniform train` command per unfinished run (for a cluster scheduler)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run (or print the commands of) the sweep's unfinished runs."""
    from ..sweep import run_sweep

    run_sweep(args.grid, args.out, workers=args.workers, emit_commands=args.emit_commands)
    return 0
