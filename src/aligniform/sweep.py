"""Sweeps: many ordinary ``aligniform train`` runs over a grid of options, resumable, summarised in sweep.csv.

A grid file (YAML)::

    base:            # options shared by every run (any TrainConfig field)
      dataset: mnist5k
      epochs: 4
    grid:            # the cartesian product of these lists
      objective: ["contrastive(tau=0.2)", "align(alpha=2) + uniform(t=2)"]
      batch_size: [128, 256]
    runs:            # and/or an explicit list of option sets (each merged over base)
      - {objective: "3*align(alpha=2) + uniform(t=3)", lr: 0.05, role: {ratio: 3}}

An entry of a ``grid`` list may be a mapping: its options are set together (the key then only names the axis).
A run may carry a ``role`` (in ``base``, a ``runs`` entry or such a mapping): what the run stands for in a
study's design, one name and its number, e.g. ``{ratio: 4}`` or ``{align alone: 2}``. It is not a training
option: it enters neither the run's config nor its name, so adding roles to a grid finds the same run folders.
``sweep.csv`` then has the columns ``role`` and ``role_value`` (empty for runs without one), which the studies
read (:func:`aligniform.studies.correlation_data.encoder_role`).

Each run lives in ``OUT/<name>/`` (name = index + a hash of its options) and
is skipped when it has finished with these options
(:func:`aligniform.train.reuse.finished_results`), so a killed sweep resumes.
A grid of more than :data:`MAX_RUNS` (10,000) runs is refused before it is expanded unless the caller
raises ``max_runs`` (``aligniform sweep --max-runs N``): the count is the product of the grid's list
lengths plus the listed runs. A grid may not set ``out`` (the sweep names the folders); ``progress`` is
ignored (runs write to their ``train.log``). A run that fails is reported on its
own line with the last line of its log; the others go on, and the sweep ends
with :class:`SweepRunsFailed` listing the failed runs.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import json
import math
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ._numerics import is_finite_number
from ._validation import check_positive_int
from .config import ConfigError, TrainConfig, read_yaml_file
from .configs import find_config


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its folder name, the options that differ from the defaults, and its role (if any).

    ``role`` is the grid's label of the run, ``(name, value)`` such as ``("ratio", 4.0)``; it is not an option
    and does not enter the name's hash.
    """

    name: str
    options: dict[str, Any]
    role: tuple[str, float] | None = None

    def config(self, out: Path) -> TrainConfig:
        """The run's training config, with its folder inside the sweep folder ``out``."""
        return TrainConfig.from_dict({**self.options, "out": str(out / self.name), "progress": False})


class SweepRunsFailed(RuntimeError):
    """Some runs of a sweep failed; the others finished. ``failed`` holds the failed runs' names."""

    def __init__(self, message: str, failed: list[str]) -> None:
        super().__init__(message)
        self.failed = failed


#: Options a grid may not set: each run's folder is ``OUT/<name>`` of the sweep's ``--out``.
RESERVED_OPTIONS = ("out",)
#: Options a grid may set but that are ignored: runs train without progress bars (their output goes to train.log).
IGNORED_OPTIONS = ("progress",)
#: The key of a run's role in a grid file; it is taken out of the run's options (see :class:`SweepRun`).
ROLE_KEY = "role"
#: The columns of sweep.csv that hold a run's role, when some run of the grid has one.
ROLE_COLUMNS = ("role", "role_value")


#: The most runs a grid file may expand to unless the caller raises ``max_runs``: a sweep's runs are each
#: validated (and, in the sweep folder, trained) one by one, so a typo such as ten options of eight values
#: (about 10^9 runs) would otherwise exhaust the memory or run for ever.
MAX_RUNS = 10_000


def grid_size(grid: dict[str, list[Any]], explicit: list[Any]) -> int:
    """How many runs a grid section (its cartesian product) and a runs section make, computed without expanding.

    Examples:
        >>> grid_size({"lr": [0.1, 0.2], "seed": [0, 1, 2]}, [{"epochs": 1}])
        7
        >>> grid_size({}, [])
        1
    """
    product = math.prod(len(values) for values in grid.values()) if grid else 0
    return max(1, product + len(explicit))


def load_grid(path: str | Path, max_runs: int | None = MAX_RUNS) -> list[SweepRun]:
    """Expand a grid file (or a shipped grid by name, ``"mnist5k_correlation"``) into runs, validating them up front.

    The number of runs is computed from the lengths of the grid's lists before anything is expanded, and a
    grid of more than ``max_runs`` runs is refused at once; the cartesian product is then expanded lazily,
    one run at a time.

    Args:
        path: the YAML grid file.
        max_runs: the most runs the grid may make (default :data:`MAX_RUNS`); ``None`` for no limit.

    Raises:
        ConfigError: naming the file (and the run) when the file is missing, a folder, not UTF-8 or not
            valid YAML, a section has the wrong shape (``base`` and each entry of ``runs`` are mappings,
            ``grid`` maps options to non-empty lists), the grid makes more than ``max_runs`` runs, an option
            set is not a valid training config, a grid sets ``out``, a ``role`` is not one name and its number,
            or two runs have the same options.

    Examples:
        >>> import tempfile
        >>> grid = Path(tempfile.mkdtemp()) / "grid.yaml"
        >>> _ = grid.write_text("grid: {seed: [0, 1], lr: [0.1, 0.2, 0.3]}")
        >>> len(load_grid(grid))
        6
        >>> load_grid(grid, max_runs=4)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        aligniform.config.ConfigError: .../grid.yaml makes 6 runs (grid 2 x 3), more than `max_runs` (4); ...
    """
    path = find_config(path, ConfigError, "sweep grid file", grid=True)  # a shipped grid by name, too
    if max_runs is not None:
        max_runs = check_positive_int(max_runs, "max_runs")
    spec = read_yaml_file(path, "sweep grid file")
    if not isinstance(spec, dict) or not set(spec) <= {"base", "grid", "runs"}:
        found = sorted(map(str, spec)) if isinstance(spec, dict) else f"a YAML {type(spec).__name__}"
        raise ConfigError(f"a sweep grid file has the sections base, grid and/or runs (mappings); {path} has {found}")
    base = _mapping(spec.get("base") or {}, "base", path)
    grid = _mapping(spec.get("grid") or {}, "grid", path)
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid option {key!r} must be a non-empty list of values, got {values!r} (in {path})")
    explicit = spec.get("runs") or []
    if not isinstance(explicit, list):
        raise ConfigError(f"section runs of {path} must be a list of option mappings, got {type(explicit).__name__}")
    count = grid_size(grid, explicit)
    if max_runs is not None and count > max_runs:
        shape = " x ".join(str(len(values)) for values in grid.values()) or "none"
        listed = f" + {len(explicit)} listed runs" if explicit else ""
        raise ConfigError(
            f"{path} makes {count:,} runs (grid {shape}{listed}), more than `max_runs` ({max_runs:,}); "
            f"shrink the grid, or raise `max_runs` to run them all"
        )
    combos = (_combined(grid, combo) for combo in itertools.product(*grid.values())) if grid else iter(())
    listed_sets = (_mapping(options, f"runs entry {index}", path) for index, options in enumerate(explicit))
    option_sets = itertools.chain(combos, listed_sets) if grid or explicit else iter([{}])
    runs: list[SweepRun] = []
    seen: dict[str, int] = {}
    for index, options in enumerate(option_sets):
        merged = {**base, **options}
        reserved = [key for key in RESERVED_OPTIONS if key in merged]
        if reserved:
            raise ConfigError(
                f"{path} sets {', '.join(reserved)}, which a sweep chooses itself: each run trains in "
                f"<the sweep's `out`>/<run name>; remove {', '.join(reserved)} from the grid"
            )
        for ignored in IGNORED_OPTIONS:
            merged.pop(ignored, None)
        role = _role(merged.pop(ROLE_KEY), index, path) if ROLE_KEY in merged else None
        try:
            TrainConfig.from_dict(merged)
        except ConfigError as error:
            raise ConfigError(f"run {index} of {path} ({options}): {error}") from None
        digest = hashlib.sha1(json.dumps(merged, sort_keys=True).encode()).hexdigest()[:8]
        if digest in seen:
            raise ConfigError(
                f"runs {seen[digest]} and {index} of {path} have the same options ({merged}); "
                f"remove one, or make them differ (e.g. by seed)"
            )
        seen[digest] = index
        runs.append(SweepRun(f"run{index:03d}-{digest}", merged, role))
    return runs


def _combined(grid: dict[str, list[Any]], combo: tuple[Any, ...]) -> dict[str, Any]:
    """One point of the grid's product: an option per key, or the options of a mapping entry set together."""
    options: dict[str, Any] = {}
    for key, value in zip(grid, combo):
        if isinstance(value, dict):
            options.update(value)
        else:
            options[key] = value
    return options


def _role(value: Any, index: int, path: Path) -> tuple[str, float]:
    """A grid's ``role: {name: number}`` as ``(name, number)``.

    Examples:
        >>> _role({"ratio": 4}, 0, Path("g.yaml")), _role({"align alone": 2}, 1, Path("g.yaml"))
        (('ratio', 4.0), ('align alone', 2.0))
    """
    if isinstance(value, dict) and len(value) == 1:
        ((name, number),) = value.items()
        if isinstance(name, str) and name.strip() and is_finite_number(number):
            return name, float(number)
    raise ConfigError(
        f"run {index} of {path}: `role` must be one name and its number, e.g. {{ratio: 4}}, got {value!r}"
    )


def _mapping(value: Any, section: str, path: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(
            f"{section} of {path} must be a mapping of option: value, got {type(value).__name__} {value!r}"
        )
    return value


def train_command(run: SweepRun, out: Path) -> list[str]:
    """The ordinary ``aligniform train`` invocation of one run."""
    return config_train_command(out / run.name)


def config_train_command(folder: Path) -> list[str]:
    """``aligniform train`` of the config saved as ``folder/requested.yaml``, into ``folder``."""
    return [
        sys.executable,
        "-m",
        "aligniform",
        "train",
        "--config",
        str(folder / "requested.yaml"),
        "--out",
        str(folder),
        "--no-progress",
        "--overwrite",  # a run that failed before is trained again from the start
    ]


def _prepare(run: SweepRun, out: Path) -> None:
    folder = out / run.name
    folder.mkdir(parents=True, exist_ok=True)
    run.config(out).to_yaml(folder / "requested.yaml")


def train_in_processes(configs: list[TrainConfig], workers: int, stream: TextIO | None = None) -> list[str]:
    """Train each config with ``aligniform train`` in its own process, ``workers`` at a time.

    Each run's folder is its ``config.out``; it gets ``requested.yaml`` (the config), ``train.log`` (the
    process's output) and ``wall_seconds.txt``. Every process gets ``cores / workers`` threads. A failed run
    does not stop the others.

    Args:
        configs: the runs' configs (each with its own ``out``).
        workers: processes at a time.
        stream: where a line per finished or failed run goes (default: standard output).

    Returns:
        The folder names of the runs that failed (empty when all finished).
    """
    workers = check_positive_int(workers, "workers")
    stream = stream or sys.stdout
    folders = []
    for config in configs:
        folder = Path(config.out)
        folder.mkdir(parents=True, exist_ok=True)
        dataclasses.replace(config, progress=False).to_yaml(folder / "requested.yaml")
        folders.append(folder)
    threads = max(1, (os.cpu_count() or 1) // workers)
    failures = []

    def execute(folder: Path) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        started = time.perf_counter()
        log = folder / "train.log"
        with log.open("w") as handle:
            command = config_train_command(folder)
            code = subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT).returncode
        seconds = time.perf_counter() - started
        (folder / "wall_seconds.txt").write_text(f"{seconds:.2f}\n")
        if code == 0:
            print(f"  {folder.name}: done in {seconds:.0f} s", file=stream, flush=True)
            return
        failures.append(folder.name)
        print(
            f"  {folder.name}: FAILED (exit {code}) in {seconds:.0f} s: {_last_line(log)} (log: {log})",
            file=stream,
            flush=True,
        )

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(execute, folders))
    return sorted(failures)


def _results(run: SweepRun, out: Path) -> dict[str, Any] | None:
    """The run's results when it has finished with these options, else None."""
    # Imported here: the training code needs the 'train' extra, and `aligniform sweep --help` (and the grid checks)
    # must work in the core install.
    from .train.reuse import finished_results

    return finished_results(out / run.name, run.config(out))


def run_sweep(
    grid_file: str | Path,
    out: str | Path,
    workers: int = 1,
    emit_commands: bool = False,
    stream: TextIO | None = None,
    max_runs: int | None = MAX_RUNS,
) -> list[dict[str, Any]]:
    """Run (or print the commands of) every unfinished run, then write ``sweep.csv``.

    Args:
        grid_file: the YAML grid.
        out: the sweep folder.
        workers: runs at a time on this machine; each gets ``cores / workers`` threads.
        emit_commands: print one shell command per unfinished run (for a cluster
            scheduler, e.g. a SLURM array) instead of running them.
        stream: where progress lines and commands go (default: standard output).
        max_runs: the most runs the grid may make (see :func:`load_grid`); ``None`` for no limit.

    Returns:
        The rows of ``sweep.csv``.

    Raises:
        ConfigError: the grid file is invalid (see :func:`load_grid`).
        SweepRunsFailed: after every run was tried and ``sweep.csv`` written, when some runs failed.
    """
    out = Path(out)
    stream = stream or sys.stdout
    workers = check_positive_int(workers, "workers")
    runs = load_grid(grid_file, max_runs)
    pending = [run for run in runs if _results(run, out) is None]
    if emit_commands:
        for run in pending:
            _prepare(run, out)
            print(shlex.join(train_command(run, out)), file=stream)
        return []
    print(
        f"sweep: {len(runs)} runs, {len(runs) - len(pending)} already finished, {len(pending)} to run "
        f"({workers} at a time)",
        file=stream,
        flush=True,
    )
    failures = train_in_processes([run.config(out) for run in pending], workers, stream)
    rows = write_summary(runs, out)
    print(f"sweep: wrote {out / 'sweep.csv'} ({len(rows)} finished runs)", file=stream)
    if failures:
        raise SweepRunsFailed(
            f"{len(failures)} of {len(pending)} run(s) failed: {', '.join(failures)}; see each run's train.log in "
            f"{out}, fix the cause and rerun the sweep (finished runs are kept)",
            failures,
        )
    return rows


def _last_line(log: Path) -> str:
    """The last non-blank line of a run's log: the error of a failed ``aligniform train``."""
    try:
        lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return "no log"
    return next((line for line in reversed(lines) if line), "empty log")


def write_summary(runs: list[SweepRun], out: Path) -> list[dict[str, Any]]:
    """``sweep.csv``: one row per finished run: its options, role (when the grid gives roles), results, wall time."""
    with_roles = any(run.role is not None for run in runs)
    rows = []
    for run in runs:
        results = _results(run, out)
        if results is None:
            continue
        wall = out / run.name / "wall_seconds.txt"
        row = {"run": run.name, **run.options}
        if with_roles:  # a grid without roles writes the sweep.csv it wrote before roles existed
            row.update(zip(ROLE_COLUMNS, run.role or ("", "")))
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
