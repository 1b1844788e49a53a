"""The ``aligniform`` command: a thin layer over the library.

Each sub-command parses flags into the library's objects (a TrainConfig, a
checkpoint path, ...) and calls one library function. Errors users can fix
(bad options, missing datasets, corrupt checkpoints, a diverging loss) are
printed as one line, without a traceback, with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import ConfigError, TrainConfig

# Flags of `train` that map one-to-one onto TrainConfig fields: flag -> (field, type, help)
TRAIN_FLAGS = {
    "--dataset": ("dataset", str, "dataset name: mnist5k, digits, cifar10, cifar100, stl10, imagefolder"),
    "--data-dir": ("data_dir", str, "folder holding (or caching) the dataset files"),
    "--model": ("model", str, "encoder: convnet, resnet18, smallalexnet"),
    "--objective": ("objective", str, 'loss spec, e.g. "0.98*align(alpha=2) + 0.96*uniform(t=2)"'),
    "--epochs": ("epochs", int, "number of epochs"),
    "--batch-size": ("batch_size", int, "global batch size (split across processes under torchrun)"),
    "--lr": ("lr", float, "base learning rate per 256 samples (the optimiser uses lr x batch / 256)"),
    "--dim": ("dim", int, "embedding dimension"),
    "--seed": ("seed", int, "random seed"),
    "--device": ("device", str, "cpu, cuda or auto"),
    "--out": ("out", str, "output folder of the run"),
    "--schedule": ("schedule", str, "lr schedule: step, cosine or constant"),
    "--milestones": (
        "milestones",
        str,
        "epochs where a step schedule multiplies the lr by --lr-decay, e.g. 155,170,185",
    ),
    "--lr-decay": ("lr_decay", float, "factor of the step schedule"),
    "--momentum": ("momentum", float, "SGD momentum"),
    "--weight-decay": ("weight_decay", float, "SGD weight decay"),
    "--precision": ("precision", str, "fp32, bf16 or fp16 (autocast)"),
    "--queue-size": ("queue_size", int, "MoCo queue length"),
    "--moco-momentum": ("moco_momentum", float, "MoCo key-encoder momentum"),
    "--augmentation": ("augmentation", str, "paper, digits or none (default: the dataset's)"),
    "--image-size": ("image_size", int, "resize images to this size when loading"),
    "--input-size": ("input_size", int, "side of the encoder's input crops (default: the images' size)"),
    "--val-fraction": ("val_fraction", float, "fraction of the labelled training set held out for monitoring"),
    "--eval-layer": ("eval_layer", str, "layer evaluated by the probes (default: the model's)"),
    "--linear-probe": ("linear_probe", str, "final linear probe: short, paper or none"),
}
TRAIN_SWITCHES = {
    "--download": ("download", "download the dataset into --data-dir if missing (cifar10/cifar100/stl10)"),
    "--moco": ("moco", "MoCo mode: momentum encoder + feature queue fed to the losses"),
    "--sync-bn": ("sync_bn", "SyncBatchNorm across processes under torchrun"),
}


class UserError(Exception):
    """An error to print as one line (exit code 2)."""


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML config file; flags override its values")
    for flag, (_, kind, text) in TRAIN_FLAGS.items():
        parser.add_argument(flag, type=kind, default=None, help=text)
    for flag, (_, text) in TRAIN_SWITCHES.items():
        parser.add_argument(flag, action="store_true", default=None, help=text)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint.pt")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults < the --config YAML (or the run's saved config.yaml on --resume) < explicit flags."""
    base = TrainConfig()
    if args.config is not None:
        base = TrainConfig.from_yaml(args.config)
    elif getattr(args, "resume", False) and args.out and (Path(args.out) / "config.yaml").is_file():
        base = TrainConfig.from_yaml(Path(args.out) / "config.yaml")
    overrides = {field: getattr(args, flag[2:].replace("-", "_")) for flag, (field, _, _) in TRAIN_FLAGS.items()}
    overrides.update({field: getattr(args, flag[2:].replace("-", "_")) for flag, (field, _) in TRAIN_SWITCHES.items()})
    if args.no_progress:
        overrides["progress"] = False
    return base.replace(**overrides)


def command_train(args: argparse.Namespace) -> int:
    from .train import run

    config = config_from_args(args)
    results = run(config, resume=args.resume)
    if results is not None:
        print(format_results({Path(config.out).name: results}))
        print(f"results written to {Path(config.out) / 'results.json'}")
    return 0


def command_eval(args: argparse.Namespace) -> int:
    from .train.restore import evaluate_checkpoint

    results = evaluate_checkpoint(
        args.checkpoint,
        layer=args.layer,
        protocol=args.protocol,
        dataset=args.dataset,
        data_dir=args.data_dir,
        device=args.device,
    )
    out = args.json or Path(args.checkpoint).with_name(f"eval_{results['eval_layer']}.json")
    Path(out).write_text(json.dumps(results, indent=2) + "\n")
    print(format_results({Path(args.checkpoint).name: results}))
    print(f"written to {out}")
    return 0


def command_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(Path(args.out), epochs=args.epochs, device=args.device)
    return 0


def command_sweep(args: argparse.Namespace) -> int:
    from .sweep import run_sweep

    run_sweep(args.grid, args.out, workers=args.workers, emit_commands=args.emit_commands)
    return 0


def command_analyze(args: argparse.Namespace) -> int:
    from .analysis import (
        analyze_embeddings,
        embeddings_from_checkpoint,
        embeddings_from_sentence_model,
        format_analysis,
        load_embedding_file,
    )

    sources = [
        args.checkpoint is not None,
        args.npz is not None,
        args.npy_dir is not None,
        args.sentence_model is not None,
    ]
    if sum(sources) != 1:
        raise UserError(
            "give exactly one input: CHECKPOINT, --npz FILE, --npy-dir DIR or --sentence-model NAME --pairs FILE"
        )
    if args.sentence_model is not None:
        if args.pairs is None:
            raise UserError("--sentence-model needs --pairs FILE.tsv (two text columns per line: a positive pair)")
        embeddings = embeddings_from_sentence_model(args.sentence_model, args.pairs)
    elif args.checkpoint is not None:
        embeddings = embeddings_from_checkpoint(
            args.checkpoint, args.dataset, args.data_dir, args.split, args.layer, args.device
        )
    else:
        embeddings = load_embedding_file(args.npz or args.npy_dir)
    result = analyze_embeddings(embeddings, normalize=args.normalize, max_pairs=args.max_pairs)
    if args.figures is not None:
        result["figures"] = analysis_figures(embeddings, args.figures, args.normalize)
    print(json.dumps(result, indent=2) if args.json else format_analysis(result))
    if args.figures is not None and not args.json:
        print("figures: " + ", ".join(result["figures"]))
    return 0


def analysis_figures(embeddings, folder: Path, normalize: bool) -> list[str]:
    """The paper's pictures of these embeddings: positive-pair distances; the circle when d = 2."""
    import torch.nn.functional as F

    from ._validation import as_tensor
    from .plots import plot_alignment_histogram, plot_hypersphere

    prepare = (lambda a: F.normalize(as_tensor(a, "x").double(), dim=1)) if normalize else (lambda a: a)
    x = prepare(embeddings.x)
    written = []
    if embeddings.y is not None:
        plot_alignment_histogram(x, prepare(embeddings.y), out=folder / "alignment_histogram")
        written.append(str(folder / "alignment_histogram.png"))
    if x.shape[1] == 2:
        plot_hypersphere(x, labels=embeddings.labels, out=folder / "hypersphere")
        written.append(str(folder / "hypersphere.png"))
    return written


STUDY_NAMES = ("correlation", "latent-classes", "temperature", "theorem1")


def _study(name: str):
    from .studies import STUDIES

    return STUDIES[name]


def parse_study_options(options_class, assignments: list[str]) -> dict:
    """``key=value`` strings -> typed overrides of a study's options dataclass (lists as a,b,c)."""
    import dataclasses

    defaults = {
        f.name: f.default if f.default is not dataclasses.MISSING else None for f in dataclasses.fields(options_class)
    }
    overrides = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in defaults:
            raise UserError(f"--set expects KEY=VALUE with KEY one of {', '.join(defaults)}; got {assignment!r}")
        overrides[key] = _typed(text.strip(), defaults[key], key)
    return overrides


def _typed(text: str, default, key: str):
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if isinstance(default, (tuple, list)):
            kind = type(default[0]) if default else float
            return type(default)(kind(item) for item in text.replace(" ", "").split(",") if item)
        if isinstance(default, (int, float)):
            return type(default)(text)
        return text
    except ValueError:
        raise UserError(f"--set {key}: cannot read {text!r} as {type(default).__name__}") from None


def command_study(args: argparse.Namespace) -> int:
    import dataclasses

    run_study, options_class = _study(args.name)
    if args.list_options:
        for field in dataclasses.fields(options_class):
            print(f"{field.name} = {field.default!r}")
        return 0
    if args.out is None:
        raise UserError("study needs --out DIR")
    run_study(args.out, **parse_study_options(options_class, args.set))
    return 0


def command_report(args: argparse.Namespace) -> int:
    from .report import write_report

    path = write_report(args.run_dirs, args.output, title=args.title)
    print(f"report written to {path}")
    return 0


RESULT_COLUMNS = [
    ("linear_acc", "linear %", 100),
    ("knn_acc", "5-NN %", 100),
    ("mean_classifier_acc", "mean-cls %", 100),
    ("alignment", "align ↓", 1),
    ("uniformity", "uniform ↓", 1),
    ("tolerance", "tolerance", 1),
]


def format_results(rows: dict[str, dict]) -> str:
    """A plain-text table: one row per run, the paper's metrics as columns."""
    names = list(rows)
    width = max(12, *(len(n) for n in names))
    header = f"{'':{width}}" + "".join(f"{title:>12}" for _, title, _ in RESULT_COLUMNS)
    lines = [header, "-" * len(header)]
    for name in names:
        cells = []
        for key, _, scale in RESULT_COLUMNS:
            value = rows[name].get(key)
            cells.append(f"{value * scale:>12.2f}" if isinstance(value, (int, float)) else f"{'—':>12}")
        lines.append(f"{name:{width}}" + "".join(cells))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aligniform",
        description="Train and judge encoders on the hypersphere: alignment, uniformity, contrastive losses.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train an encoder (also under torchrun)", description=command_train.__doc__
    )
    add_train_arguments(train)
    train.set_defaults(handler=command_train)

    evaluate = commands.add_parser("eval", help="evaluate a checkpoint (linear, 5-NN, mean classifier)")
    evaluate.add_argument("checkpoint", type=Path, help="checkpoint.pt or best.pt of a run")
    evaluate.add_argument("--layer", help="layer to evaluate (default: the model's default evaluation layer)")
    evaluate.add_argument("--protocol", choices=["linear", "knn", "mean", "all"], default="all")
    evaluate.add_argument("--dataset", help="evaluate on another dataset than the run's")
    evaluate.add_argument("--data-dir", help="dataset folder (default: the run's)")
    evaluate.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    evaluate.add_argument("--json", type=Path, help="where to write the JSON results")
    evaluate.set_defaults(handler=command_eval)

    demo = commands.add_parser("demo", help="contrastive vs align+uniform on mnist5k, with baselines (~5 min on CPU)")
    demo.add_argument("--out", default="demo_out", help="output folder")
    demo.add_argument("--epochs", type=int, default=None, help="epochs per encoder (default: the demo's budget)")
    demo.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    demo.set_defaults(handler=command_demo)

    sweep = commands.add_parser("sweep", help="train many encoders over a grid of options (resumable)")
    sweep.add_argument("grid", type=Path, help="YAML grid file (sections base, grid, runs)")
    sweep.add_argument("--out", type=Path, required=True, help="sweep folder (one sub-folder per run, sweep.csv)")
    sweep.add_argument("--workers", type=int, default=1, help="runs at a time on this machine")
    sweep.add_argument(
        "--emit-commands",
        action="store_true",
        help="print one `aligniform train` command per unfinished run (for a cluster scheduler)",
    )
    sweep.set_defaults(handler=command_sweep)

    analyze = commands.add_parser("analyze", help="alignment, uniformity, tolerance, ... of any embeddings")
    analyze.add_argument("checkpoint", type=Path, nargs="?", help="a checkpoint (positive pairs from its augmentation)")
    analyze.add_argument("--dataset", help="dataset of the checkpoint's pairs (default: the one it was trained on)")
    analyze.add_argument("--data-dir", help="dataset folder")
    analyze.add_argument("--split", default="test", help="dataset split (default: test)")
    analyze.add_argument("--layer", default="output", help="layer of the checkpoint's encoder (default: output)")
    analyze.add_argument("--device", default="cpu", help="device for the checkpoint's encoder")
    analyze.add_argument("--npz", type=Path, help=".npz with arrays x, y (positive pairs) and optional labels")
    analyze.add_argument("--npy-dir", type=Path, help="folder with x.npy, y.npy and optional labels.npy")
    analyze.add_argument("--sentence-model", help="sentence-transformers model (package name or folder)")
    analyze.add_argument(
        "--pairs", type=Path, help="TSV of sentence pairs for --sentence-model (optional 3rd column: label)"
    )
    analyze.add_argument("--normalize", action="store_true", help="L2-normalise features that are not unit-norm")
    analyze.add_argument(
        "--max-pairs", type=int, help="estimate uniformity from this many sampled pairs (default: exact)"
    )
    analyze.add_argument("--json", action="store_true", help="print JSON instead of a table")
    analyze.add_argument(
        "--figures",
        type=Path,
        metavar="DIR",
        help="also write the positive-pair distance histogram, and for 2-d features the "
        "paper's hypersphere KDEs, as PNG and SVG into DIR",
    )
    analyze.set_defaults(handler=command_analyze)

    study = commands.add_parser("study", help="reproduce a paper's study: " + ", ".join(STUDY_NAMES))
    study.add_argument("name", choices=STUDY_NAMES)
    study.add_argument("--out", type=Path, help="output folder (json, markdown table, figures, runs)")
    study.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a study option (lists as a,b,c); see --list-options",
    )
    study.add_argument("--list-options", action="store_true", help="print the study's options and defaults")
    study.set_defaults(handler=command_study)

    report = commands.add_parser("report", help="one self-contained HTML report of runs or a sweep")
    report.add_argument("run_dirs", type=Path, nargs="+", help="run folders and/or sweep folders")
    report.add_argument("-o", "--output", type=Path, default=Path("report.html"), help="the HTML file to write")
    report.add_argument("--title", default="aligniform report")
    report.set_defaults(handler=command_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .data import DatasetError
    from .train import CheckpointError, TrainingDiverged

    try:
        return args.handler(args)
    except TrainingDiverged as error:
        print(f"aligniform: training stopped: {error}", file=sys.stderr)
        return 1
    except (ConfigError, DatasetError, CheckpointError, UserError, ValueError, FileNotFoundError, ImportError) as error:
        print(f"aligniform {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aligniform: interrupted; resume a training run with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
