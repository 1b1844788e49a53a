"""Sweeps: many ordinary ``aligniform train`` runs over a grid of options, resumable, summarised in sweep.csv.

A grid file (YAML)::

    base:            # options shared by every run (any TrainConfig field)
      dataset: mnist5k
      epochs: 4
    grid:            # the cartesian product of these lists
      objective: ["contrastive(tau=0.2)", "align(alpha=2) + uniform(t=2)"]
      batch_size: [128, 256]
    runs:            # and/or an explicit list of option sets (each merged over base)
      - {objective: "3*align(alpha=2) + uniform(t=3)", lr: 0.05}

Each run lives in ``OUT/<name>/`` (name = index + a hash of its options) and
is skipped when it has finished with these options
(:func:`aligniform.train.reuse.finished_results`), so a killed sweep resumes.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from .config import ConfigError, TrainConfig
from .train.reuse import finished_results


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its folder name and the options that differ from the defaults."""

    name: str
    options: dict[str, Any]

    def config(self, out: Path) -> TrainConfig:
        """The run's training config, with its folder inside the sweep folder ``out``."""
        return TrainConfig.from_dict({**self.options, "out": str(out / self.name), "progress": False})


def load_grid(path: str | Path) -> list[SweepRun]:
    """Expand a grid file into runs, validating every option set up front."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep grid file {path} does not exist")
    spec = yaml.safe_load(path.read_text()) or {}
    if not isinstance(spec, dict) or not set(spec) <= {"base", "grid", "runs"}:
        found = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        raise ConfigError(f"a sweep grid file has the sections base, grid and/or runs; {path} has {found}")
    base = spec.get("base") or {}
    grid = spec.get("grid") or {}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid option {key!r} must be a non-empty list of values, got {values!r}")
    option_sets = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] if grid else []
    option_sets += list(spec.get("runs") or [])
    if not option_sets:
        option_sets = [{}]
    runs = []
    for index, options in enumerate(option_sets):
        merged = {**base, **options}
        for reserved in ("out", "progress"):
            merged.pop(reserved, None)
        try:
            TrainConfig.from_dict(merged)
        except ConfigError as error:
            raise ConfigError(f"run {index} of {path} ({options}): {error}") from None
        digest = hashlib.sha1(json.dumps(merged, sort_keys=True).encode()).hexdigest()[:8]
        runs.append(SweepRun(f"run{index:03d}-{digest}", merged))
    return runs


def train_command(run: SweepRun, out: Path) -> list[str]:
    """The ordinary ``aligniform train`` invocation of one run."""
    return [
        sys.executable,
        "-m",
        "aligniform",
        "train",
        "--config",
        str(out / run.name / "requested.yaml"),
        "--out",
        str(out / run.name),
        "--no-progress",
    ]


def _prepare(run: SweepRun, out: Path) -> None:
    folder = out / run.name
    folder.mkdir(parents=True, exist_ok=True)
    run.config(out).to_yaml(folder / "requested.yaml")


def _results(run: SweepRun, out: Path) -> dict[str, Any] | None:
    """The run's results when it has finished with these options, else None."""
    return finished_results(out / run.name, run.config(out))


def run_sweep(
    grid_file: str | Path,
    out: str | Path,
    workers: int = 1,
    emit_commands: bool = False,
    stream: TextIO | None = None,
) -> list[dict[str, Any]]:
    """Run (or print the commands of) every unfinished run, then write ``sweep.csv``.

    Args:
        grid_file: the YAML grid.
        out: the sweep folder.
        workers: runs at a time on this machine; each gets ``cores / workers`` threads.
        emit_commands: print one shell command per unfinished run (for a cluster
            scheduler, e.g. a SLURM array) instead of running them.
        stream: where progress lines and commands go (default: standard output).

    Returns:
        The rows of ``sweep.csv``.
    """
    out = Path(out)
    stream = stream or sys.stdout
    runs = load_grid(grid_file)
    pending = [run for run in runs if _results(run, out) is None]
    for run in pending:
        _prepare(run, out)
    if emit_commands:
        for run in pending:
            print(shlex.join(train_command(run, out)), file=stream)
        return []
    print(
        f"sweep: {len(runs)} runs, {len(runs) - len(pending)} already finished, {len(pending)} to run "
        f"({workers} at a time)",
        file=stream,
        flush=True,
    )
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    failures = []

    def execute(run: SweepRun) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        started = time.perf_counter()
        log = out / run.name / "train.log"
        with log.open("w") as handle:
            code = subprocess.run(train_command(run, out), env=env, stdout=handle, stderr=subprocess.STDOUT).returncode
        seconds = time.perf_counter() - started
        (out / run.name / "wall_seconds.txt").write_text(f"{seconds:.2f}\n")
        status = "done" if code == 0 else f"FAILED (exit {code}, see {log})"
        if code != 0:
            failures.append(run.name)
        print(f"  {run.name}: {status} in {seconds:.0f} s", file=stream, flush=True)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(execute, pending))
    rows = write_summary(runs, out)
    print(f"sweep: wrote {out / 'sweep.csv'} ({len(rows)} finished runs)", file=stream)
    if failures:
        raise RuntimeError(f"{len(failures)} run(s) failed: {', '.join(failures)}; rerun the sweep to retry them")
    return rows


def write_summary(runs: list[SweepRun], out: Path) -> list[dict[str, Any]]:
    """``sweep.csv``: one row per finished run with its options, results and wall time."""
    rows = []
    for run in runs:
        results = _results(run, out)
        if results is None:
            continue
        wall = out / run.name / "wall_seconds.txt"
        row = {"run": run.name, **run.options}
        row.update({k: v for k, v in results.items() if isinstance(v, (int, float, str)) and k not in row})
        row["wall_seconds"] = float(wall.read_text()) if wall.exists() else results.get("train_seconds")
        rows.append(row)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with (out / "sweep.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def read_sweep(out: str | Path) -> list[dict[str, Any]]:
    """The rows of a sweep's ``sweep.csv`` with numbers parsed."""
    with (Path(out) / "sweep.csv").open() as handle:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _number(text: str) -> float | str:
    try:
        return float(text)
    except (TypeError, ValueError):
        return text
