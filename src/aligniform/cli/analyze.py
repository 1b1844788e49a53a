"""``aligniform analyze``: alignment, uniformity, tolerance, ... of any embeddings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    from ..analysis import EmbeddingSet


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``analyze`` to the sub-commands."""
    parser = commands.add_parser("analyze", help="alignment, uniformity, tolerance, ... of any embeddings")
    parser.add_argument("checkpoint", type=Path, nargs="?", help="a checkpoint (positive pairs from its augmentation)")
    parser.add_argument("--dataset", help="dataset of the checkpoint's pairs (default: the one it was trained on)")
    parser.add_argument("--data-dir", help="dataset folder")
    parser.add_argument("--split", default="test", help="dataset split (default: test)")
    parser.add_argument("--layer", default="output", help="layer of the checkpoint's encoder (default: output)")
    parser.add_argument("--device", default="cpu", help="device for the checkpoint's encoder")
    parser.add_argument("--npz", type=Path, help=".npz with arrays x, y (positive pairs) and optional labels")
    parser.add_argument("--npy-dir", type=Path, help="folder with x.npy, y.npy and optional labels.npy")
    parser.add_argument("--sentence-model", help="sentence-transformers model (package name or folder)")
    parser.add_argument(
        "--pairs", type=Path, help="TSV of sentence pairs for --sentence-model (optional 3rd column: label)"
    )
    parser.add_argument("--normalize", action="store_true", help="L2-normalise features that are not unit-norm")
    parser.add_argument(
        "--max-pairs", type=int, help="estimate uniformity from this many sampled pairs (default: exact)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--figures",
        type=Path,
        metavar="DIR",
        help="also write the positive-pair distance histogram, and for 2-d features the "
        "paper's hypersphere KDEs, as PNG and SVG into DIR",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Load the embeddings from the one source given, measure them, print the result (and draw it)."""
    from ..analysis import analyze_embeddings, format_analysis

    embeddings = load_embeddings(args)
    result = analyze_embeddings(embeddings, normalize=args.normalize, max_pairs=args.max_pairs)
    if args.figures is not None:
        from ..analysis.figures import analysis_figures

        result["figures"] = analysis_figures(embeddings, args.figures, args.normalize)
    print(json.dumps(result, indent=2) if args.json else format_analysis(result))
    if args.figures is not None and not args.json:
        print("figures: " + ", ".join(result["figures"]))
    return 0


def load_embeddings(args: argparse.Namespace) -> EmbeddingSet:
    """The embeddings of the one source the flags name: a checkpoint, a file or a sentence model."""
    from ..analysis import embeddings_from_checkpoint, embeddings_from_sentence_model, load_embedding_file

    sources = [args.checkpoint, args.npz, args.npy_dir, args.sentence_model]
    if sum(source is not None for source in sources) != 1:
        raise UserError(
            "give exactly one input: CHECKPOINT, --npz FILE, --npy-dir DIR or --sentence-model NAME --pairs FILE"
        )
    if args.sentence_model is not None:
        if args.pairs is None:
            raise UserError("--sentence-model needs --pairs FILE.tsv (two text columns per line: a positive pair)")
        return embeddings_from_sentence_model(args.sentence_model, args.pairs)
    if args.checkpoint is not None:
        return embeddings_from_checkpoint(
            args.checkpoint, args.dataset, args.data_dir, args.split, args.layer, args.device
        )
    return load_embedding_file(args.npz or args.npy_dir)
