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
    "--milestones": ("milestones", str, "epochs where a step schedule multiplies the lr by --lr-decay, e.g. 155,170,185"),
    "--lr-decay": ("lr_decay", float, "factor of the step schedule"),
    "--momentum": ("momentum", float, "SGD momentum"),
    "--weight-decay": ("weight_decay", float, "SGD weight decay"),
    "--precision": ("precision", str, "fp32, bf16 or fp16 (autocast)"),
    "--queue-size": ("queue_size", int, "MoCo queue length"),
    "--moco-momentum": ("moco_momentum", float, "MoCo key-encoder momentum"),
    "--augmentation": ("augmentation", str, "paper, digits or none (default: the dataset's)"),
    "--image-size": ("image_size", int, "resize images to this size"),
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
        args.checkpoint, layer=args.layer, protocol=args.protocol, dataset=args.dataset,
        data_dir=args.data_dir, device=args.device,
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


RESULT_COLUMNS = [
    ("linear_acc", "linear %", 100), ("knn_acc", "5-NN %", 100), ("mean_classifier_acc", "mean-cls %", 100),
    ("alignment", "align ↓", 1), ("uniformity", "uniform ↓", 1), ("tolerance", "tolerance", 1),
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

    train = commands.add_parser("train", help="train an encoder (also under torchrun)", description=command_train.__doc__)
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
    except (ConfigError, DatasetError, CheckpointError, UserError, ValueError, FileNotFoundError) as error:
        print(f"aligniform {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aligniform: interrupted; resume a training run with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
