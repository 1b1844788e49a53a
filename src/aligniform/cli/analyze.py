"""``aligniform analyze``: alignment, uniformity, tolerance, ... of any embeddings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError, os_error_reason, path_argument
from .inputs import data_folder, input_file, input_path

if TYPE_CHECKING:
    from ..analysis import EmbeddingSet


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``analyze`` to the sub-commands."""
    parser = commands.add_parser("analyze", help="alignment, uniformity, tolerance, ... of any embeddings")
    parser.add_argument(
        "checkpoint",
        type=input_path,
        nargs="?",
        metavar="PATH",
        help="embeddings to read, by what PATH is: an .npz (as --npz), a folder holding x.npy (as --npy-dir), "
        "else a checkpoint (positive pairs from its augmentation)",
    )
    parser.add_argument("--dataset", help="dataset of the checkpoint's pairs (default: the one it was trained on)")
    parser.add_argument("--data-dir", type=data_folder, help="dataset folder")
    parser.add_argument("--split", default="test", help="dataset split (default: test)")
    parser.add_argument("--layer", default="output", help="layer of the checkpoint's encoder (default: output)")
    parser.add_argument("--device", default="cpu", help="device for the checkpoint's encoder")
    parser.add_argument("--npz", type=input_path, help=".npz with arrays x, y (positive pairs) and optional labels")
    parser.add_argument("--npy-dir", type=input_path, help="folder with x.npy, y.npy and optional labels.npy")
    parser.add_argument("--sentence-model", help="sentence-transformers model (package name or folder)")
    parser.add_argument(
        "--pairs", type=input_file, help="TSV of sentence pairs for --sentence-model (optional 3rd column: label)"
    )
    parser.add_argument("--normalize", action="store_true", help="L2-normalise features that are not unit-norm")
    parser.add_argument(
        "--max-pairs", type=int, help="estimate uniformity from this many sampled pairs (default: exact)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--figures",
        type=path_argument,
        metavar="DIR",
        help="also write the positive-pair distance histogram, and for 2-d features the "
        "paper's hypersphere KDEs, as PNG and SVG into DIR",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Load the embeddings from the one source given, measure them, print the result (and draw it)."""
    from .._outputs import check_output_path
    from ..analysis import analyze_embeddings, format_analysis
    from ..analysis.figures import planned_figures

    # Checked before the work: the analysis is printed before the figures are drawn, so a failure to
    # write them (a full disk) loses nothing; and no figure may replace an input or a run's file.
    if args.figures is not None:
        check_output_path(args.figures, "--figures", folder=True, inputs=input_files(args), files=FIGURE_FILES)
    if args.pairs is not None and args.sentence_model is None:  # it would be ignored without a word
        raise UserError("--pairs is read only with --sentence-model (the sentences it embeds); drop --pairs")
    if args.max_pairs is not None and args.max_pairs <= 0:
        raise UserError(f"--max-pairs must be a positive integer, got {args.max_pairs}")
    embeddings = load_embeddings(args)
    result = analyze_embeddings(embeddings, normalize=args.normalize, max_pairs=args.max_pairs)
    if args.figures is not None:
        result["figures"] = planned_figures(embeddings, args.figures)
    print(json.dumps(result, indent=2) if args.json else format_analysis(result), flush=True)
    if args.figures is not None:
        draw_figures(args, embeddings)
        if not args.json:
            print("figures: " + ", ".join(result["figures"]))
    return 0


#: Every file ``--figures`` may write (which ones depends on the embeddings, known only once they are read).
FIGURE_FILES = tuple(f"{name}.{suffix}" for name in ("alignment_histogram", "hypersphere") for suffix in ("png", "svg"))


def input_files(args: argparse.Namespace) -> list[Path]:
    """The files this command reads: the embedding file or the arrays of a folder, a checkpoint, the pairs."""
    files = []
    for given in (args.checkpoint, args.npz, args.npy_dir, args.pairs):
        if given is None:
            continue
        path = Path(given).expanduser()
        files += [path / f"{name}.npy" for name in ("x", "y", "labels")] if path.is_dir() else [path]
    return files


def draw_figures(args: argparse.Namespace, embeddings: EmbeddingSet) -> None:
    """Draw ``analyze --figures``; a failure to write them says the analysis was printed."""
    from ..analysis.figures import analysis_figures

    try:
        analysis_figures(embeddings, args.figures, args.normalize)
    except OSError as error:
        problem, fix = os_error_reason(error)
        where = f" ({error.filename})" if error.filename else ""
        raise UserError(
            f"the analysis was printed, but its figures were not saved to --figures {args.figures}{where}: "
            f"{problem}; {fix}"
        ) from None


def load_embeddings(args: argparse.Namespace) -> EmbeddingSet:
    """The embeddings of the one source the flags name (:func:`aligniform.analysis.load_embeddings`)."""
    from ..analysis import load_embeddings as load

    args.handler_spellings = {"path": "PATH"}  # the library's `path` is this command's positional argument
    return load(
        args.checkpoint,
        npz=args.npz,
        npy_dir=args.npy_dir,
        sentence_model=args.sentence_model,
        pairs=args.pairs,
        dataset=args.dataset,
        data_dir=args.data_dir,
        split=args.split,
        layer=args.layer,
        device=args.device,
    )
