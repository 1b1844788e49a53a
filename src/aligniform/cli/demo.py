"""``aligniform demo``: contrastive vs align + uniform on mnist5k, with raw-pixel baselines."""

from __future__ import annotations

import argparse

from .errors import UserError


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``demo`` to the sub-commands."""
    parser = commands.add_parser("demo", help="contrastive vs align+uniform on mnist5k, with baselines (~5 min on CPU)")
    parser.add_argument("--out", default="demo_out", help="output folder")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per encoder (default: the demo's budget)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the demo."""
    from .._validation import check_output_path
    from ..demo import run_demo

    if args.epochs is not None and args.epochs <= 0:
        raise UserError(f"--epochs must be a positive integer, got {args.epochs}")
    run_demo(check_output_path(args.out, "--out", folder=True), epochs=args.epochs, device=args.device)
    return 0
