"""Plumbing shared by the studies: options, progress, JSON/markdown output, small figures, statistics."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.stats import spearmanr


def build_options(options_class, options=None, overrides: dict | None = None):
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
    base = options if options is not None else options_class()
    return dataclasses.replace(base, **overrides)  # runs __post_init__'s checks again


def options_dict(options) -> dict:
    """A dataclass of options as a JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(options)))


# Measured on the 2-core shared development machine: with other jobs running,
# OpenMP's spin-waiting made 2 intra-op threads 4-20x slower than 1 for these
# studies' small operations (e.g. the synthetic Theorem 1 check: 59 s vs 3 s).
THREADS_HELP = (
    "torch intra-op threads while the study runs (0: leave torch's setting). 1 is fastest on small shared "
    "CPUs; on a free many-core machine or a GPU pass 0"
)


@contextlib.contextmanager
def torch_threads(count: int):
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


def write_json(path: Path, values: dict) -> Path:
    """Write ``values`` as indented JSON; NaN and infinities become null (strict JSON)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(values), indent=2) + "\n")
    return path


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


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


def cell(value, digits: int = 4) -> str:
    """A table cell: floats with ``digits`` decimals, missing values as an em dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation; NaN with fewer than 3 points or a constant column (no warning)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(spearmanr(a, b).statistic)


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout matplotlib ``Figure`` on the Agg canvas (no pyplot, no display needed)."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, stem: Path) -> list[str]:
    """Save ``<stem>.png`` and ``<stem>.svg``; return their paths as strings."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]
    figure.savefig(paths[0], dpi=150)
    figure.savefig(paths[1], metadata={"Date": None})  # no date: re-runs give identical files
    return [str(p) for p in paths]


def figure_paths(stem: Path) -> list[str]:
    """The PNG and SVG paths that :func:`save_figure` (and :mod:`aligniform.plots`) write for ``stem``."""
    stem = Path(stem)
    return [str(stem.with_name(stem.name + suffix)) for suffix in (".png", ".svg")]


def log_log_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log|y| against log x (NaN when fewer than 2 usable points).

    Examples:
        >>> round(log_log_slope([1, 10, 100], [2.0, 0.2, 0.02]), 6)
        -1.0
    """
    x, y = np.asarray(x, dtype=float), np.abs(np.asarray(y, dtype=float))
    keep = (x > 0) & (y > 0) & np.isfinite(y)
    if keep.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])
