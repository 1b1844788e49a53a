"""``aligniform eval``: evaluate a checkpoint with the linear probe, k-NN and the mean classifier."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .errors import UserError, os_error_reason, path_argument
from .inputs import data_folder


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``eval`` to the sub-commands."""
    parser = commands.add_parser("eval", help="evaluate a checkpoint (linear, 5-NN, mean classifier)")
    parser.add_argument("checkpoint", type=path_argument, help="checkpoint.pt or best.pt of a run")
    parser.add_argument("--layer", help="layer to evaluate (default: the model's default evaluation layer)")
    parser.add_argument("--protocol", choices=["linear", "knn", "mean", "all"], default="all")
    parser.add_argument("--dataset", help="evaluate on another dataset than the run's")
    parser.add_argument("--data-dir", type=data_folder, help="dataset folder (default: the run's)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--json", type=path_argument, help="where to write the JSON results (default: eval_LAYER.json)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Evaluate the checkpoint, print the results, then write them as JSON beside it (or to --json).

    Where the JSON goes is checked before the evaluation; if writing still fails (a full disk), the
    results have been printed already.
    """
    from .._io import write_json
    from .._outputs import check_output_path
    from ..analysis.format import format_results
    from ..train.restore import evaluate_checkpoint

    checkpoint = check_checkpoint_file(Path(args.checkpoint))
    if args.json is not None:
        # Never the checkpoint itself, nor any other file of a run folder.
        args.json = check_output_path(args.json, "--json", inputs=[checkpoint])  # a link: the file it points to
    elif checkpoint.parent.is_dir() and not os.access(checkpoint.parent, os.W_OK | os.X_OK):
        raise UserError(
            f"cannot write the results into the run folder {checkpoint.parent} (permission denied or a read-only "
            f"file system); pass --json PATH to write them elsewhere"
        )
    results = evaluate_checkpoint(
        checkpoint,
        layer=args.layer,
        protocol=args.protocol,
        dataset=args.dataset,
        data_dir=args.data_dir,
        device=args.device,
    )
    print(format_results({checkpoint.name: results}), flush=True)
    target = args.json or checkpoint.with_name(f"eval_{results['eval_layer']}.json")
    try:
        out = write_json(target, results)
    except OSError as error:
        problem, fix = os_error_reason(error)
        raise UserError(
            f"the results above were not saved to {target}: {problem}; {fix}, or pass --json PATH"
        ) from None
    print(f"written to {out}")
    return 0


def check_checkpoint_file(checkpoint: Path) -> Path:
    """``checkpoint`` if it is a regular file; a folder, a FIFO or a device is named for what it is.

    Checked here because a loader told "no such checkpoint" about a folder that exists sends the user the
    wrong way, and reading a FIFO would block until something writes to it.
    """
    if checkpoint.is_dir():
        found = [name for name in ("checkpoint.pt", "best.pt") if (checkpoint / name).is_file()]
        hint = f"give {checkpoint / found[0]}" if found else "give the checkpoint file (checkpoint.pt or best.pt)"
        raise UserError(f"CHECKPOINT {checkpoint} is a folder, not a checkpoint file; {hint}")
    if checkpoint.exists() and not checkpoint.is_file():
        raise UserError(
            f"CHECKPOINT {checkpoint} is not a regular file (a FIFO, socket or device); give a checkpoint file"
        )
    return checkpoint
