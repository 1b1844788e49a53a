"""``aligniform train``: its flags are generated from :class:`~aligniform.config.TrainConfig`'s fields."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import render_options
from .inputs import data_folder, input_path


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``train`` to the sub-commands."""
    parser = commands.add_parser(
        "train",
        help="train an encoder (also under torchrun)",
        description="Train an encoder. Defaults < the --config YAML (or, on --resume, the run's own configuration, "
        "from its checkpoint) < flags. A folder that already holds a run is used only with --resume (continue it) "
        "or --overwrite (replace it); see docs/runs.md.",
    )
    add_train_arguments(parser)
    parser.set_defaults(handler=handle)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config``, one flag per :class:`TrainConfig` field (from its metadata), ``--resume`` and ``--overwrite``.

    A field's flag is ``--field-name`` unless its metadata names another
    (``"flag"``); fields whose metadata says ``"cli": False`` get none. A bool
    field is a switch that sets the opposite of its default; every other
    flag takes one value (a list as ``a,b,c``). An unset flag stays ``None``,
    so it does not override the --config file.
    """
    parser.add_argument(
        "--config",
        type=input_path,
        help="YAML config file, or a shipped config by name (aligniform configs); flags override it",
    )
    hints = typing.get_type_hints(TrainConfig)
    flags = {field.name: config_flag(field) for field in config_fields()}
    for field in config_fields():
        kind = hints[field.name]
        # A help text names other options by field name, as error messages do; here they are flags.
        help_text = render_options(field.metadata["help"], flags) if field.metadata.get("help") else None
        common: dict[str, Any] = {"dest": field.name, "default": None, "help": help_text}
        if kind is bool:
            parser.add_argument(config_flag(field), action="store_const", const=not field.default, **common)
        else:
            # A dataset folder that is a file is refused here; the library reads the text.
            kind_type = data_folder if field.name == "data_dir" else _flag_type(kind)
            parser.add_argument(config_flag(field), type=kind_type, **common)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint.pt (only --epochs (never below the epochs done), "
        "--device, --data-dir, --download, --no-progress and --validate-every may change; each change is recorded "
        "in history.yaml)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run that --out already holds: its checkpoints, metrics, config, history, results and "
        "tensorboard/ are deleted once every option has been checked",
    )


def config_fields() -> Iterator[dataclasses.Field]:
    """The :class:`TrainConfig` fields that are command-line flags."""
    return (field for field in dataclasses.fields(TrainConfig) if field.metadata.get("cli", True))


def config_flag(field: dataclasses.Field) -> str:
    """The flag of a :class:`TrainConfig` field, e.g. ``--batch-size`` for ``batch_size``."""
    return field.metadata.get("flag", "--" + field.name.replace("_", "-"))


def _flag_type(kind: Any) -> type:
    # argparse reads numbers itself; everything else (lists, text) goes to the config as text, which
    # reads it with parse_value and names the option in its error.
    if isinstance(kind, types.UnionType):  # X | None
        kind = next(value for value in typing.get_args(kind) if value is not type(None))
    return kind if kind in (int, float) else str


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's :class:`TrainConfig` from the parsed flags, merged by :func:`~aligniform.train.resolve_config`."""
    from ..train import resolve_config  # the training code needs the 'train' extra; `--help` must not

    flags = {field.name: getattr(args, field.name) for field in config_fields()}
    return resolve_config(args.config, flags, resume=getattr(args, "resume", False))


def handle(args: argparse.Namespace) -> int:
    """Train (or resume, or replace) the run and print its results table."""
    from ..analysis.format import format_results
    from ..train import ResultsNotSaved, run
    from ..train.run_folder import check_folder, check_resume

    config = config_from_args(args)
    check_folder(config.out, args.resume, args.overwrite)  # the cheap refusals, before any data is loaded
    if args.resume:
        check_resume(config)
    try:
        results = run(config, resume=args.resume, overwrite=args.overwrite)
    except ResultsNotSaved as error:  # show what was computed before saying it could not be saved
        print(format_results({Path(config.out).name: error.results}))
        raise
    if results is not None:
        print(format_results({Path(config.out).name: results}))
        print(f"results written to {Path(config.out) / 'results.json'}")
    return 0
