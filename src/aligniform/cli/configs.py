"""``aligniform configs``: the shipped training configs and sweep grids, by the names the commands accept."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``configs`` to the sub-commands."""
    parser = commands.add_parser(
        "configs",
        help="list the shipped configs (train --config NAME) and sweep grids (sweep NAME)",
        description="List the configs and grids shipped with aligniform. Pass a name wherever a file is "
        "accepted: `aligniform train --config mnist5k`, `aligniform sweep mnist5k_correlation` (a file of "
        "that name in the current folder wins).",
    )
    parser.add_argument("--path", action="store_true", help="also print where each file is installed")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Print the training configs, then the sweep grids, one per line with what each is."""
    from ..configs import config_description, config_names, config_path
    from ..configs._find import SWEEPS

    names = config_names()
    groups = (
        ("training configs (aligniform train --config NAME)", [n for n in names if not n.startswith(f"{SWEEPS}/")]),
        ("sweep grids (aligniform sweep NAME --out DIR)", [n for n in names if n.startswith(f"{SWEEPS}/")]),
    )
    width = max(len(name.removeprefix(f"{SWEEPS}/")) for name in names)
    for index, (title, members) in enumerate(groups):
        print(("\n" if index else "") + title + ":")
        for name in members:
            line = f"  {name.removeprefix(f'{SWEEPS}/').ljust(width)}  {config_description(name)}"
            print(line + (f"\n  {''.ljust(width)}  {config_path(name)}" if args.path else ""))
    return 0
