"""``aligniform demo``: contrastive vs align + uniform on mnist5k, with raw-pixel baselines."""

from __future__ import annotations

import argparse

from .errors import UserError, path_argument


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``demo`` to the sub-commands."""
    parser = commands.add_parser("demo", help="contrastive vs align+uniform on mnist5k, with baselines (~5 min on CPU)")
    parser.add_argument("--out", type=path_argument, default="demo_out", help="output folder")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per encoder (default: the demo's budget)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the demo.

    :func:`~aligniform.demo.run_demo` checks ``--out`` before any work: it may not be a run's folder, and a run
    in ``--out/contrastive`` or ``--out/align_uniform`` is replaced only when the demo made it.
    """
    from ..demo import run_demo

    if args.epochs is not None and args.epochs <= 0:
        raise UserError(f"--epochs must be a positive integer, got {args.epochs}")
    run_demo(args.out, epochs=args.epochs, device=args.device)
    return 0
