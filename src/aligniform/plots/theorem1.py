"""Wang & Isola's (2020) Theorem 1: L_contrastive − log M converges as the number of negatives M grows.

:func:`plot_theorem1` draws L − log M against M with its limit; :func:`plot_theorem1_gaps`
draws the gap to the limit on log–log axes, as the ``theorem1`` study measures it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ._figure import as_array, finish, new_figure, to_float

_DEFAULT_NAME = "encoder"
_SHARED = object()  # key of a single limit shared by every series


def plot_theorem1(
    negatives: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray | Mapping[str, Sequence[float] | np.ndarray],
    limit: float | Mapping[str, float] | None,
    out: str | Path | None = None,
    *,
    subtract_log_m: bool = True,
) -> Figure:
    """Contrastive loss minus log M against the number of negatives M, with its limit.

    Theorem 1 of Wang & Isola (2020): as M → ∞,
    L_contrastive(f; τ, M) − log M → −(1/τ) E_pos[f(x)ᵀf(y)] + E_x[log E_{x⁻}[exp(f(x)ᵀf(x⁻)/τ)]],
    the value of :func:`aligniform.asymptotic_contrastive_loss`. Each series is
    drawn as points joined by a line (log-scale M axis); its limit is a dashed
    horizontal line of the same colour.

    Args:
        negatives: the M values (positive numbers), shared by all series.
        values: the contrastive losses L_contrastive(f; τ, M), one per M, as a
            list/array, or a dict name -> list to compare several encoders.
            They are raw losses: log M is subtracted here (see ``subtract_log_m``).
        limit: the asymptotic value: a number (one limit for all series), a
            dict name -> number matching ``values``, or ``None`` for no line.
        out: when given, save ``<out>.png`` and ``<out>.svg``.
        subtract_log_m: set False when ``values`` already are L − log M.

    Returns:
        The matplotlib ``Figure`` (one axes).

    Examples:
        >>> import math
        >>> m = [1, 4, 16, 64]
        >>> figure = plot_theorem1(m, [1.0 + math.log(k) + 1 / k for k in m], limit=1.0)
        >>> figure.axes[0].get_xscale()
        'log'
    """
    m = as_array(negatives, "negatives").ravel()
    if m.size == 0 or not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise ValueError("negatives must be a non-empty list of positive numbers of negatives M")
    series = _named_series(values, m.size)
    limits = _named_limits(limit, series)
    order = np.argsort(m)

    figure = new_figure(5.6, 3.8)
    axes = figure.add_subplot()
    for index, (name, losses) in enumerate(series.items()):
        color = f"C{index % 10}"
        shifted = losses - np.log(m) if subtract_log_m else losses
        axes.plot(m[order], shifted[order], "o-", color=color, markersize=4, label=name)
        if name in limits:
            axes.axhline(limits[name], color=color, linestyle="--", linewidth=1.2, label=f"{name}: M → ∞ limit")
    if _SHARED in limits:
        axes.axhline(limits[_SHARED], color="black", linestyle="--", linewidth=1.2, label="M → ∞ limit")
    axes.set_xscale("log")
    axes.set_xlabel("number of negatives M")
    axes.set_ylabel("L_contrastive − log M")
    axes.set_title("Theorem 1: convergence as M grows", fontsize=10)
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=8)
    return finish(figure, out)


def plot_theorem1_gaps(sources: Mapping[str, Iterable[Mapping]], out: str | Path | None = None) -> Figure:
    """|E[L − log M] − limit| against M on log–log axes, one panel per feature source, with c/M guides.

    Args:
        sources: source name (e.g. ``"synthetic"``, ``"encoder"``) -> its curves,
            one per temperature, each a dict with ``tau``, ``predicted_m_times_gap``
            (the constant c of the predicted gap c/M) and ``rows``: one dict per M
            with ``M``, ``gap`` and ``gap_sem`` (standard error, drawn as ± 2 s.e.).
        out: when given, save ``<out>.png`` and ``<out>.svg``.

    Returns:
        The matplotlib ``Figure`` (one axes per source).

    Raises:
        ValueError: ``sources`` is empty.

    Examples:
        >>> rows = [{"M": m, "gap": 2.0 / m, "gap_sem": 0.01} for m in (1, 4, 16)]
        >>> figure = plot_theorem1_gaps({"synthetic": [{"tau": 0.5, "predicted_m_times_gap": 2.0, "rows": rows}]})
        >>> figure.axes[0].get_xscale(), figure.axes[0].get_yscale()
        ('log', 'log')
    """
    if not sources:
        raise ValueError("sources must name at least one feature source with its curves")
    figure = new_figure(5.2 * len(sources), 3.8)
    for column, (source, curves) in enumerate(sources.items()):
        axes = figure.add_subplot(1, len(sources), column + 1)
        for index, curve in enumerate(curves):
            m = np.array([r["M"] for r in curve["rows"]], dtype=float)
            gap = np.array([abs(r["gap"]) for r in curve["rows"]])
            sem = np.array([r["gap_sem"] for r in curve["rows"]])
            color = f"C{index % 10}"
            axes.errorbar(
                m, gap, yerr=2 * sem, fmt="o-", color=color, markersize=3, capsize=2, label=f"τ = {curve['tau']:g}"
            )
            axes.plot(m, abs(curve["predicted_m_times_gap"]) / m, ":", color=color, linewidth=1.2)
        axes.plot([], [], "k:", linewidth=1.2, label="predicted c / M")
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("number of negatives M")
        axes.set_ylabel("|E[L − log M] − limit|  (± 2 s.e.)")
        axes.set_title(f"{source} features: gap to Theorem 1's limit", fontsize=10)
        axes.grid(alpha=0.3, which="both")
        axes.legend(fontsize=8)
    return finish(figure, out)


def _named_series(values, length: int) -> dict[str, np.ndarray]:
    series = dict(values) if isinstance(values, Mapping) else {_DEFAULT_NAME: values}
    if not series:
        raise ValueError("values must contain at least one series")
    result = {}
    for name, losses in series.items():
        losses = as_array(losses, f"values[{name!r}]").ravel()
        if losses.size != length:
            raise ValueError(
                f"values[{name!r}] has {losses.size} entries but negatives has {length}; give one loss per M"
            )
        result[str(name)] = losses
    return result


def _named_limits(limit, series: dict[str, np.ndarray]) -> dict:
    if limit is None:
        return {}
    if isinstance(limit, Mapping):
        unknown = sorted(set(map(str, limit)) - set(series))
        if unknown:
            raise ValueError(f"limit names {unknown} match no series in values ({sorted(series)})")
        limits = {str(name): to_float(value) for name, value in limit.items()}
        bad = [name for name, value in limits.items() if value is None]
        if bad:
            raise ValueError(f"limit values must be finite numbers; bad entries: {bad}")
        return limits
    number = to_float(limit)
    if number is None:
        raise ValueError(f"limit must be a finite number, a dict name -> number, or None; got {limit!r}")
    if len(series) == 1:  # a single series: draw its limit in its own colour
        return {next(iter(series)): number}
    return {_SHARED: number}
