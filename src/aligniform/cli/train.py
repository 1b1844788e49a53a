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


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``train`` to the sub-commands."""
    parser = commands.add_parser(
        "train",
        help="train an encoder (also under torchrun)",
        description="Train an encoder. Defaults < the --config YAML (or the run's config.yaml on --resume) < flags.",
    )
    add_train_arguments(parser)
    parser.set_defaults(handler=handle)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config``, one flag per :class:`TrainConfig` field (from its metadata) and ``--resume``.

    A field's flag is ``--field-name`` unless its metadata names another
    (``"flag"``); fields whose metadata says ``"cli": False`` get none. A bool
    field is a switch that sets the opposite of its default; every other
    flag takes one value (a list as ``a,b,c``). An unset flag stays ``None``,
    so it does not override the --config file.
    """
    parser.add_argument("--config", type=Path, help="YAML config file; flags override its values")
    hints = typing.get_type_hints(TrainConfig)
    for field in config_fields():
        kind = hints[field.name]
        common: dict[str, Any] = {"dest": field.name, "default": None, "help": field.metadata.get("help")}
        if kind is bool:
            parser.add_argument(config_flag(field), action="store_const", const=not field.default, **common)
        else:
            parser.add_argument(config_flag(field), type=_flag_type(kind), **common)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint.pt")


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
    """Defaults < the --config YAML (or the run's saved config.yaml on --resume) < explicit flags."""
    base = TrainConfig()
    saved = Path(args.out) / "config.yaml" if args.out else None
    if args.config is not None:
        base = TrainConfig.from_yaml(args.config)
    elif getattr(args, "resume", False) and saved is not None and saved.is_file():
        base = TrainConfig.from_yaml(saved)
    return base.replace(**{field.name: getattr(args, field.name) for field in config_fields()})


def handle(args: argparse.Namespace) -> int:
    """Train (or resume) the run and print its results table."""
    from ..analysis.format import format_results
    from ..train import run

    config = config_from_args(args)
    results = run(config, resume=args.resume)
    if results is not None:
        print(format_results({Path(config.out).name: results}))
        print(f"results written to {Path(config.out) / 'results.json'}")
    return 0
