"""Reading run and sweep folders for the report: what each holds, and every problem found, never raised."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RUN_FILES", "RunFolder", "SweepFolder", "load_folders", "report_inputs"]

#: Files a run folder is expected to hold (any one of them makes a folder a run folder).
RUN_FILES = ("config.yaml", "metrics.jsonl", "results.json")


@dataclass
class RunFolder:
    """What the report shows for one run folder."""

    path: Path
    name: str
    anchor: str = ""
    config_text: str | None = None
    results: dict | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class SweepFolder:
    """What the report shows for one sweep folder."""

    path: Path
    name: str
    anchor: str = ""
    rows: list[dict] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    runs: list[RunFolder] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load_folders(paths: list[Path]) -> tuple[list[RunFolder], list[SweepFolder]]:
    runs, sweeps = [], []
    for path in paths:
        if not path.is_dir():
            raise ValueError(f"{path} is not a folder; give run folders or sweep folders")
        if (path / "sweep.csv").is_file():
            sweeps.append(_load_sweep(path))
        elif is_run_folder(path):
            runs.append(_load_run(path, path.name))
        else:
            raise ValueError(
                f"{path} is neither a run folder (holding one of {', '.join(RUN_FILES)}) "
                "nor a sweep folder (holding sweep.csv)"
            )
    _assign_names_and_anchors(runs + [run for sweep in sweeps for run in sweep.runs], sweeps)
    return runs, sweeps


def report_inputs(paths: list[Path]) -> list[Path]:
    """The files a report of these folders reads, which its output must never replace.

    A run folder's :data:`RUN_FILES` and PNG figures; a sweep folder's ``sweep.csv`` and PNGs, and those of
    its run sub-folders. Paths that are not folders are left to :func:`load_folders` to report.
    """
    inputs: list[Path] = []
    for path in paths:
        if not path.is_dir():
            continue
        folders = [path]
        if (path / "sweep.csv").is_file():
            inputs.append(path / "sweep.csv")
            folders += sorted(child for child in path.iterdir() if child.is_dir() and is_run_folder(child))
        for folder in folders:
            inputs += [folder / name for name in RUN_FILES if (folder / name).is_file()]
            inputs += sorted(folder.glob("*.png"))
    return inputs


def is_run_folder(path: Path) -> bool:
    return any((path / name).is_file() for name in RUN_FILES)


def _assign_names_and_anchors(runs: list[RunFolder], sweeps: list[SweepFolder]) -> None:
    seen: dict[str, int] = {}
    for index, run in enumerate(runs, start=1):
        run.anchor = f"run-{index}"
        count = seen[run.name] = seen.get(run.name, 0) + 1
        if count > 1:  # two folders called "run0" in different places
            run.name = f"{run.name} ({count})"
    for index, sweep in enumerate(sweeps, start=1):
        sweep.anchor = f"sweep-{index}"


def _load_run(path: Path, name: str) -> RunFolder:
    run = RunFolder(path=path, name=name)
    missing = [file for file in RUN_FILES if not (path / file).is_file()]
    if missing:
        run.problems.append(f"missing: {', '.join(missing)}")
    if "config.yaml" not in missing:
        run.config_text = _read_text(path / "config.yaml", run.problems)
    if "results.json" not in missing:
        text = _read_text(path / "results.json", run.problems)
        if text is not None:
            try:
                results = json.loads(text)
            except json.JSONDecodeError as error:
                run.problems.append(f"results.json is not valid JSON ({error.msg}, line {error.lineno})")
            else:
                if isinstance(results, dict):
                    run.results = results
                else:
                    run.problems.append(f"results.json holds a {type(results).__name__}, not a JSON object")
    return run


def _read_text(path: Path, problems: list[str]) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        problems.append(f"could not read {path.name}: {error}")
        return None


def _load_sweep(path: Path) -> SweepFolder:
    sweep = SweepFolder(path=path, name=path.name)
    try:
        with (path / "sweep.csv").open(newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            sweep.rows = list(reader)
            sweep.columns = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        sweep.problems.append(f"could not read sweep.csv: {error}")
    children = sorted(child for child in path.iterdir() if child.is_dir() and is_run_folder(child))
    sweep.runs = [_load_run(child, f"{path.name}/{child.name}") for child in children]
    if not children:
        sweep.problems.append(f"no run sub-folders found (sub-folders holding one of {', '.join(RUN_FILES)})")
    elif sweep.rows and len(sweep.rows) != len(children):
        sweep.problems.append(f"sweep.csv has {len(sweep.rows)} rows but {len(children)} run sub-folders were found")
    return sweep
