"""Shared plumbing for :mod:`aligniform.plots`: figures without pyplot, saving, input coercion."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .._extras import requires_extra
from .._numerics import is_finite_number

with requires_extra("plots"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

#: Resolution of the saved PNG files (the SVG files are resolution-free).
SAVE_DPI = 150
#: Resolution of the PNGs embedded in the HTML report (smaller files, still sharp on screen).
REPORT_DPI = 100

# Suffixes stripped from ``out`` so that "fig.png" and "fig" both give fig.png + fig.svg.
# Any other suffix is part of the stem: "tau0.5" must not become "tau0".
_FIGURE_SUFFIXES = {".png", ".svg", ".pdf"}


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout ``Figure`` with its own Agg canvas.

    We never touch ``pyplot``: it would pick (and maybe switch) the user's global
    backend, need a display for interactive ones, and keep every figure alive
    until ``plt.close``. A bare ``Figure`` is garbage-collected like any object.
    """
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def output_stem(out: str | Path) -> Path:
    """The path without a figure suffix: ``runs/a/align.png`` -> ``runs/a/align``."""
    path = Path(out).expanduser()
    if path.suffix.lower() in _FIGURE_SUFFIXES:
        path = path.with_suffix("")
    return path


def save_figure(figure: Figure, out: str | Path) -> tuple[Path, Path]:
    """Save ``figure`` as ``<stem>.png`` and ``<stem>.svg`` (creating folders); return both paths.

    Both files are rendered in memory first and then written atomically (:func:`aligniform._io.write_atomic`):
    a failure (a full disk) leaves an existing file as it was, never an empty or partial one, and the error
    names the file.
    """
    from .._io import write_bytes_atomic

    stem = output_stem(out)
    png = stem.with_name(stem.name + ".png")
    svg = stem.with_name(stem.name + ".svg")
    png_data = png_bytes(figure, dpi=SAVE_DPI)
    buffer = io.BytesIO()
    # No date in the SVG so that re-running a script gives byte-identical files.
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    write_bytes_atomic(png, png_data)
    write_bytes_atomic(svg, buffer.getvalue())
    return png, svg


def finish(figure: Figure, out: str | Path | None) -> Figure:
    """Save ``figure`` when ``out`` is given; return it either way."""
    if out is not None:
        save_figure(figure, out)
    return figure


def png_bytes(figure: Figure, dpi: int = REPORT_DPI) -> bytes:
    """Render ``figure`` to PNG bytes in memory."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def as_array(values: ArrayLike, name: str) -> np.ndarray:
    """A float64 numpy array from a numpy array, a torch tensor or a (nested) list of numbers."""
    if hasattr(values, "detach"):  # torch.Tensor, without importing torch here
        values = values.detach().cpu().numpy()
    elif isinstance(values, (list, tuple)):
        values = [
            as_array(value, name) if isinstance(value, (list, tuple)) else _scalar(value, name) for value in values
        ]
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        kind = type(values).__name__
        raise ValueError(f"{name} must be numbers (a numpy array, a tensor or a list), got {kind}") from None


def _scalar(value, name: str) -> float:
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must contain only numbers, got {value!r}") from None


def to_float(value: object) -> float | None:
    """``value`` as a finite float, or ``None`` when it is missing or not a number.

    Sweep rows come from CSV files, so numbers arrive as strings and missing
    values as ``""``; booleans are flags, not measurements.
    """
    if value is None or isinstance(value, bool):
        return None
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if is_finite_number(number) else None


def check_records(records: object, name: str = "records") -> list[Mapping]:
    """``records`` as a list of mappings (rows of a CSV / JSON lines), or a clear error."""
    if isinstance(records, Mapping) or not isinstance(records, Iterable) or isinstance(records, (str, bytes)):
        raise ValueError(f"{name} must be a list of dicts (one per run or epoch), got {type(records).__name__}")
    rows = list(records)
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"{name}[{index}] must be a dict, got {type(row).__name__}")
    return rows


def numeric_rows(records: list[Mapping], keys: Iterable[str]) -> list[dict[str, float]]:
    """The rows where every key in ``keys`` holds a finite number, converted to floats."""
    keys = list(keys)
    rows = []
    for record in records:
        values = {key: to_float(record.get(key)) for key in keys}
        if all(value is not None for value in values.values()):
            rows.append(values)
    return rows
