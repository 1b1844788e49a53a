"""``aligniform compare``: several encoders or embedding sets side by side, with bootstrap intervals."""

from __future__ import annotations

import argparse

from .errors import UserError, path_argument
from .inputs import check_not_special, data_folder, input_file

#: The most bootstrap resamples ``--resamples`` may ask for (the intervals need a few hundred to a few thousand).
MAX_RESAMPLES = 100_000


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``compare`` to the sub-commands."""
    parser = commands.add_parser(
        "compare",
        help="compare embeddings side by side: table, alignment-uniformity plane, HTML page",
        description="Measure every input (anything `aligniform analyze` reads: .npz/.npy, a folder holding "
        "x.npy, a checkpoint or run folder, a sentence-transformers model or model package with --pairs) and "
        "write compare.json, plane.png/.svg and compare.html into --out. With --pairs scored in a third column "
        "and --min-score, sentence models follow SimCSE's protocol: alignment over the pairs scored at least "
        "--min-score, uniformity over every sentence of the file.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="embeddings, checkpoints, run folders or models")
    parser.add_argument("--out", type=path_argument, required=True, metavar="DIR", help="folder for the outputs")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of an earlier comparison in --out")
    parser.add_argument(
        "--pairs", type=input_file, help="TSV of sentence pairs for the sentence models (optional 3rd column: score)"
    )
    parser.add_argument("--min-score", type=float, help="SimCSE: alignment only over pairs scored at least this")
    parser.add_argument("--dataset", help="dataset of the checkpoints' pairs (default: the one each was trained on)")
    parser.add_argument("--data-dir", type=data_folder, help="dataset folder")
    parser.add_argument("--split", default="test", help="dataset split (default: test)")
    parser.add_argument("--layer", default="output", help="layer of the checkpoints' encoders (default: output)")
    parser.add_argument("--device", default="cpu", help="device for checkpoints and sentence models")
    parser.add_argument("--normalize", action="store_true", help="L2-normalise features that are not unit-norm")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per input (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples (default: 0)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Check every input and --out, measure each input, print the table, then write the files."""
    from .._validation import check_positive_int
    from ..analysis.compare import compare_embeddings
    from ..analysis.compare_inputs import check_compare_inputs, load_compare_input
    from ..analysis.compare_page import check_compare_output, format_comparison, result_json, write_comparison

    # Everything that can be refused is refused before the first model loads.
    check_positive_int(args.resamples, "resamples")
    if args.resamples > MAX_RESAMPLES:  # each resample draws a row index per pair: memory grows with it
        raise UserError(f"--resamples ({args.resamples}) must be at most {MAX_RESAMPLES:,}")
    if args.seed < 0:  # numpy's generators take no negative seed
        raise UserError(f"--seed must be a non-negative integer, got {args.seed}")
    for given in args.inputs:  # an input may also be a model package's name: only what exists is looked at
        try:
            check_not_special(given)
        except argparse.ArgumentTypeError as error:
            raise UserError(f"INPUT {error}") from None
    out = check_compare_output(args.out, args.overwrite)
    inputs, pairs = check_compare_inputs(args.inputs, args.pairs, args.min_score)
    sets = {
        item.name: load_compare_input(
            item,
            pairs,
            args.min_score,
            dataset=args.dataset,
            data_dir=args.data_dir,
            split=args.split,
            layer=args.layer,
            device=args.device,
        )
        for item in inputs
    }
    result = compare_embeddings(sets, normalize=args.normalize, resamples=args.resamples, seed=args.seed)
    print(result_json(result) if args.json else format_comparison(result), flush=True)
    written = write_comparison(result, out)
    if not args.json:
        print("written: " + ", ".join(str(path) for path in written))
    return 0
