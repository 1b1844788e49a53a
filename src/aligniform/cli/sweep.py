"""``aligniform sweep``: train many encoders over a grid of options (resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..sweep import MAX_RUNS
from .errors import UserError, path_argument
from .inputs import input_path


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sweep`` to the sub-commands."""
    parser = commands.add_parser("sweep", help="train many encoders over a grid of options (resumable)")
    parser.add_argument(
        "grid", type=input_path, help="YAML grid file (sections base, grid, runs), or a shipped grid by name"
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
    """Run (or print the commands of) the sweep's unfinished runs.

    The grid, then ``--out`` are checked before the sweep folder is touched (:func:`check_sweep_folder`).
    """
    from ..sweep import run_sweep

    if args.workers <= 0:
        raise UserError(f"--workers must be a positive integer, got {args.workers}")
    out = check_sweep_folder(args.grid, args.out, args.max_runs)
    run_sweep(args.grid, out, workers=args.workers, emit_commands=args.emit_commands, max_runs=args.max_runs)
    return 0


def check_sweep_folder(grid: str | Path, out: str | Path, max_runs: int | None, name: str = "`out`") -> Path:
    """``out`` as a sweep folder for ``grid`` in which the sweep replaces nothing it did not make.

    A sweep writes ``sweep.csv`` into ``out`` and trains each unfinished run in ``out/<run name>`` from the
    start. So ``sweep.csv`` may not be the grid file (nor another input, nor a run's file), and a folder
    ``out/<run name>`` that holds a run is retrained only when that run is this sweep's: its saved config is
    the one the grid asks for (a sweep run that failed or was stopped). Reads the grid (checking it); creates
    nothing.

    Raises:
        ConfigError: the grid is invalid (:func:`aligniform.sweep.load_grid`).
        OptionError: naming ``name`` and what writing there would replace.
    """
    from .._outputs import check_output_path
    from ..config import ConfigError
    from ..configs import find_config
    from ..errors import OptionError
    from ..sweep import load_grid
    from ..train.reuse import matches
    from ..train.run_folder import existing_run_files

    runs = load_grid(grid, max_runs)  # a malformed or oversized grid is refused before the sweep folder is touched
    grid_path = find_config(grid, ConfigError, "sweep grid file", grid=True)
    folder = check_output_path(out, name, folder=True, inputs=[grid_path], files=["sweep.csv"])
    for run in runs:
        run_dir = folder / run.name
        if run_dir.is_dir() and existing_run_files(run_dir) and not matches(run_dir, run.config(folder)):
            raise OptionError(
                f"{name} {folder}: {run_dir} holds a run that this sweep did not make (its config.yaml is "
                f"missing, unreadable or other than the grid's run {run.name}), and the sweep would train it "
                f"again from the start; move it away or choose another {name}"
            )
    return folder
