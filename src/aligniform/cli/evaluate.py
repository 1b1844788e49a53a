"""``aligniform eval``: evaluate a checkpoint with the linear probe, k-NN and the mean classifier."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``eval`` to the sub-commands."""
    parser = commands.add_parser("eval", help="evaluate a checkpoint (linear, 5-NN, mean classifier)")
    parser.add_argument("checkpoint", type=Path, help="checkpoint.pt or best.pt of a run")
    parser.add_argument("--layer", help="layer to evaluate (default: the model's default evaluation layer)")
    parser.add_argument("--protocol", choices=["linear", "knn", "mean", "all"], default="all")
    parser.add_argument("--dataset", help="evaluate on another dataset than the run's")
    parser.add_argument("--data-dir", help="dataset folder (default: the run's)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--json", type=Path, help="where to write the JSON results (default: eval_LAYER.json)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Evaluate the checkpoint, write the results as JSON beside it (or to --json) and print them."""
    from .._io import write_json
    from ..analysis.format import format_results
    from ..train.restore import evaluate_checkpoint

    results = evaluate_checkpoint(
        args.checkpoint,
        layer=args.layer,
        protocol=args.protocol,
        dataset=args.dataset,
        data_dir=args.data_dir,
        device=args.device,
    )
    out = write_json(args.json or Path(args.checkpoint).with_name(f"eval_{results['eval_layer']}.json"), results)
    print(format_results({Path(args.checkpoint).name: results}))
    print(f"written to {out}")
    return 0
