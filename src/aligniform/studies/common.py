"""Plumbing shared by the studies: options, threads, progress lines, markdown tables and means over seeds.

JSON output is :func:`aligniform._io.write_json`, figures :mod:`aligniform.plots`, statistics
:mod:`aligniform.stats`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from .._io import write_bytes_atomic, write_json
from .._numerics import is_finite_number

Options = TypeVar("Options")


def build_options(
    options_class: type[Options], options: Options | None = None, overrides: dict | None = None
) -> Options:
    """An options dataclass from an instance (or the defaults) plus keyword overrides.

    Unknown names raise a ``ValueError`` listing the valid ones; ``None``
    overrides are dropped, so unset CLI flags keep the defaults.

    Examples:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Options:
        ...     steps: int = 10
        >>> build_options(Options, None, {"steps": 3})
        Options(steps=3)
        >>> build_options(Options, Options(steps=5), {"steps": None})
        Options(steps=5)
    """
    if options is not None and not isinstance(options, options_class):
        raise TypeError(f"options must be a {options_class.__name__}, got {type(options).__name__}")
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    valid = [f.name for f in dataclasses.fields(options_class)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; valid options: {', '.join(valid)}")
    from .options import validate_study_options

    base = options if options is not None else options_class()
    # replace() runs __post_init__'s checks again; then what would fail only after the output folder is made.
    return validate_study_options(dataclasses.replace(base, **overrides))


def options_dict(options: Any) -> dict:
    """A dataclass of options as a JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(options)))


# Measured on a shared machine with 2 cores: with other jobs running,
# OpenMP's spin-waiting made 2 intra-op threads 4-20x slower than 1 for these
# studies' small operations (e.g. the synthetic Theorem 1 check: 59 s vs 3 s).
THREADS_HELP = (
    "torch intra-op threads while the study runs (0: leave torch's setting). 1 is fastest on small shared "
    "CPUs; on a free many-core machine or a GPU pass 0"
)


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads (0 or None: unchanged); restore afterwards.

    Examples:
        >>> with torch_threads(1):
        ...     torch.get_num_threads()
        1
    """
    previous = torch.get_num_threads()
    if count:
        torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Progress:
    """Prints timestamped progress lines (or nothing when disabled).

    Examples:
        >>> Progress("theorem1", enabled=False)("silent")
    """

    def __init__(self, study: str, enabled: bool = True):
        self.study, self.enabled = study, enabled
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"[{self.study} {self.seconds:6.1f}s] {message}", flush=True)


def write_outputs(out: Path, name: str, results: dict, markdown: str) -> tuple[Path, Path]:
    """Write a study's ``<out>/<name>.json`` (strict JSON, atomically) and ``<out>/<name>.md``; return both paths."""
    Path(out).mkdir(parents=True, exist_ok=True)
    json_path = write_json(Path(out) / f"{name}.json", results)
    markdown_path = write_bytes_atomic(Path(out) / f"{name}.md", markdown.encode("utf-8"))
    return json_path, markdown_path


def read_study_json(folder: str | Path, name: str, error: type[ValueError], missing: str) -> dict:
    """``<folder>/<name>``, a study's JSON output, or ``error`` naming the file: ``missing`` says how to make it.

    Examples:
        >>> read_study_json("/nowhere", "x.json", ValueError, "run the study first")
        Traceback (most recent call last):
        ...
        ValueError: /nowhere/x.json does not exist: run the study first
    """
    path = Path(folder) / name
    if not path.is_file():
        raise error(f"{path} does not exist: {missing}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as reason:
        raise error(f"{path} is not readable JSON ({reason}); rerun the study that writes it") from None


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub markdown table; cells are written with :func:`cell`.

    Examples:
        >>> print(markdown_table(["M", "gap"], [[1, 0.5]]))
        | M | gap |
        |---|---|
        | 1 | 0.5000 |
    """
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def cell(value: object, digits: int = 4) -> str:
    """A table cell: floats with ``digits`` decimals, missing values as an em dash."""
    if value is None or (isinstance(value, float) and not is_finite_number(value)):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


# ----------------------------------------------------------------------------- means over seeds


def mean_and_sd(values: Sequence[Any]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n − 1) of the finite numbers among ``values``.

    None for the mean when there are none, and for the standard deviation when there is only one.

    Examples:
        >>> [round(v, 6) for v in mean_and_sd([0.9, None, 0.8])]
        [0.85, 0.070711]
        >>> mean_and_sd([1.0]), mean_and_sd([None])
        ((1.0, None), (None, None))
    """
    finite = [float(value) for value in values if is_finite_number(value)]
    if not finite:
        return None, None
    return statistics.fmean(finite), (statistics.stdev(finite) if len(finite) > 1 else None)


def summarize(
    rows: Sequence[dict],
    by: Sequence[str],
    metrics: Sequence[str],
    counts: bool = False,
    extra: Callable[[list[dict]], dict] | None = None,
) -> list[dict]:
    """Per group of rows with the same values of ``by``: the mean and sample standard deviation over seeds.

    Each entry holds the ``by`` values, ``seeds`` (the group's rows), then per metric ``key`` and
    ``key_std`` (:func:`mean_and_sd`), with ``counts`` also ``key_n`` (the rows with a finite value),
    then what ``extra(members)`` adds. Groups keep the order of their first row.

    Examples:
        >>> rows = [{"loss": "contrastive", "tau": 0.2, "accuracy": a} for a in (0.9, 0.8)]
        >>> entry = summarize(rows, ("loss", "tau"), ("accuracy",), counts=True)[0]
        >>> round(entry["accuracy"], 6), round(entry["accuracy_std"], 6), entry["accuracy_n"], entry["seeds"]
        (0.85, 0.070711, 2, 2)
    """
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[key] for key in by), []).append(row)
    summary = []
    for values, members in groups.items():
        entry: dict[str, Any] = dict(zip(by, values, strict=True))
        entry["seeds"] = len(members)
        for key in metrics:
            column = [member.get(key) for member in members]
            entry[key], entry[f"{key}_std"] = mean_and_sd(column)
            if counts:
                entry[f"{key}_n"] = sum(is_finite_number(value) for value in column)
        entry.update(extra(members) if extra else {})
        summary.append(entry)
    return summary


def difference_with_error(a: dict | None, b: dict | None, key: str) -> tuple[float | None, float | None]:
    """``a[key] − b[key]`` of two summaries over seeds and the standard error of that difference.

    The error is √(s_a²/n_a + s_b²/n_b) with ``{key}_std`` and ``{key}_n`` (the seeds with a value; ``seeds``
    when a summary does not count per metric). None for the difference when a mean is missing, and for the
    error when a standard deviation is (one seed).

    Examples:
        >>> a = {"acc": 0.9, "acc_std": 0.03, "acc_n": 3}
        >>> b = {"acc": 0.8, "acc_std": 0.04, "seeds": 3}
        >>> [round(v, 6) for v in difference_with_error(a, b, "acc")]
        [0.1, 0.028868]
    """
    if a is None or b is None or not is_finite_number(a.get(key)) or not is_finite_number(b.get(key)):
        return None, None
    return a[key] - b[key], standard_error([a, b], key)


def standard_error(entries: Sequence[dict], key: str) -> float | None:
    """Standard error of a sum or difference of the entries' means over seeds: √(Σ s²/n); None without a spread.

    ``s`` is ``{key}_std`` and ``n`` is ``{key}_n`` (the seeds with a value), or ``seeds`` when a summary
    does not count per metric.

    Examples:
        >>> entries = [{"acc_std": 0.03, "seeds": 3}, {"acc_std": 0.04, "seeds": 3}]
        >>> round(standard_error(entries, "acc"), 6), standard_error([{"acc_std": None, "seeds": 1}], "acc")
        (0.028868, None)
    """
    if not all(is_finite_number(entry.get(f"{key}_std")) for entry in entries):
        return None
    return math.sqrt(sum(entry[f"{key}_std"] ** 2 / entry.get(f"{key}_n", entry.get("seeds")) for entry in entries))


def mean_sd_cell(entry: dict | None, key: str, scale: float = 1.0, digits: int = 3) -> str:
    """``entry[key]`` ± ``entry[key + "_std"]`` as a table cell, scaled; the mean alone with one seed; — if missing.

    Examples:
        >>> mean_sd_cell({"acc": 0.9712, "acc_std": 0.0023}, "acc", 100, 2), mean_sd_cell(None, "acc")
        ('97.12 ± 0.23', '—')
    """
    if entry is None or entry.get(key) is None:
        return "—"
    text = f"{scale * entry[key]:.{digits}f}"
    spread = entry.get(f"{key}_std")
    return text if spread is None else f"{text} ± {scale * spread:.{digits}f}"
