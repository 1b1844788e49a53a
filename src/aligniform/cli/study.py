"""``aligniform study NAME``: reproduce one of the papers' studies."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

from ..studies import STUDY_NAMES  # the package loads each study on first use: listing them imports none
from .errors import UserError, path_argument, spell_options
from .inputs import check_not_special


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``study`` to the sub-commands."""
    parser = commands.add_parser("study", help="reproduce a paper's study: " + ", ".join(STUDY_NAMES))
    parser.add_argument("name", choices=STUDY_NAMES)
    parser.add_argument("--out", type=path_argument, help="output folder (json, markdown table, figures, runs)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a study option (lists as a,b,c); see --list-options",
    )
    parser.add_argument("--list-options", action="store_true", help="print the study's options and defaults")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Print the study's options, or run it with the --set overrides.

    Every option is read and checked (:func:`~aligniform.studies.common.build_options`) before ``--out`` is
    looked at, so a refused option leaves the file system as it was. Errors name a study option
    ``--set NAME`` (through ``args.handler_spellings``, see :func:`aligniform.cli.errors.spell_options`).
    """
    from ..studies import load_study
    from ..studies.common import build_options
    from ..studies.options import parse_study_options

    run_study, options_class = load_study(args.name)
    if args.list_options:
        for field in dataclasses.fields(options_class):
            print(f"{field.name} = {field.default!r}")
        return 0
    fields = {field.name for field in dataclasses.fields(options_class)}
    args.handler_spellings = lambda name: f"--set {name}" if name in fields else None
    try:
        overrides = parse_study_options(options_class, args.set)
        options = build_options(options_class, None, overrides)  # every check, before anything is written
    except ValueError as error:
        message = spell_options(error, args)
        # Messages that name their option without backticks still read as a --set option.
        raise UserError(message if "--set " in message else f"--set {message}") from None
    if args.out is None:
        raise UserError("study needs --out DIR")
    run_study(check_study_folder(args.name, options, args.out), **overrides)
    return 0


def check_study_folder(name: str, options: Any, out: Path) -> Path:
    """``out`` as the folder of study ``name``, where writing replaces no run's file and no input of the study.

    A study writes ``<name>.json`` and ``<name>.md`` into ``out``; ``correlation`` also runs its sweep there
    (``sweep.csv`` and a folder per run, checked as ``aligniform sweep`` checks them). Its inputs are the files
    its options name: correlation's grid and seed sweep, theorem1's encoder checkpoint, summary's folders and
    ``update`` file, budget's sweeps and temperature studies.
    """
    from .._outputs import check_output_path
    from .sweep import check_sweep_folder

    check_input_files(name, options)
    files = [f"{name}.json", f"{name}.md"]
    inputs: list[Path] = []
    if name == "correlation":
        from ..studies.correlation_data import grid_file

        if options.seeds:
            inputs.append(Path(options.seeds).expanduser() / "sweep.csv")
        if not options.reuse:
            files.append("sweep.csv")
            check_sweep_folder(grid_file(options.grid), out, options.max_runs, "--out")
    elif name == "theorem1" and options.encoder not in ("train", "random", "none"):
        inputs.append(Path(options.encoder).expanduser())
    elif name == "summary":
        inputs += [Path(folder).expanduser() / "results.json" for folder in [options.demo] if folder]
        studies = ("correlation", "temperature", "theorem1", "latent_classes", "family", "budget")
        for study in studies:
            value = getattr(options, study)
            for folder in value if isinstance(value, tuple) else [value] if value else []:
                inputs.append(Path(folder).expanduser() / f"{study.replace('_', '-')}.json")
        if options.update:
            inputs.append(Path(options.update).expanduser())
    elif name == "budget":
        inputs += [Path(folder).expanduser() / "sweep.csv" for folder in (*options.ratio, options.debiased) if folder]
        inputs += [Path(folder).expanduser() / "temperature.json" for folder in options.temperature]
    return check_output_path(out, "--out", folder=True, inputs=inputs, files=files)


#: The study options that name a file to read (correlation's grid, theorem1's encoder checkpoint).
INPUT_FILES = {"correlation": "grid", "theorem1": "encoder"}


def check_input_files(name: str, options: Any) -> None:
    """Refuse, before ``--out`` is created, a study's input file that is empty, a folder, a FIFO or unreadable.

    A grid that is no file would otherwise be looked up as a shipped grid's name ("no shipped config named ..."),
    and theorem1 would create ``--out`` before it found its encoder checkpoint damaged.
    """
    option = INPUT_FILES.get(name)
    value = getattr(options, option) if option else None
    if value is None or (option == "encoder" and value in ("train", "random", "none")):
        return
    spelled = f"--set {option}"
    if not str(value).strip():
        raise UserError(f"{spelled} is empty; give a file (or leave the option out)")
    try:
        check_not_special(value)
    except argparse.ArgumentTypeError as error:
        raise UserError(f"{spelled} {error}") from None
    if os.path.isdir(value):
        raise UserError(f"{spelled} {value} is a folder, not a file; give the file to read")
    if option == "encoder" and os.path.isfile(value):
        from ..train.checkpoint import load_checkpoint

        load_checkpoint(value)  # a damaged checkpoint is refused here, naming the file, before --out exists
