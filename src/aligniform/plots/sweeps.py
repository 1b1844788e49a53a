"""Figures over many encoders: the alignment–uniformity scatter, accuracy against each metric, temperature curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..stats import spearman
from ._figure import check_records, finish, new_figure, numeric_rows, to_float


def sweep_correlations(
    records: Sequence[dict],
    accuracy_key: str = "linear_acc",
    *,
    alignment_key: str = "alignment",
    uniformity_key: str = "uniformity",
) -> dict[str, float]:
    """Spearman rank correlations of accuracy with alignment and with uniformity.

    Rows missing any of the three values are skipped. Wang & Isola (2020) find
    both strongly negative: lower alignment / uniformity losses go with higher
    accuracy. A correlation is NaN when fewer than 3 rows remain or a column is
    constant.

    Returns:
        ``{"alignment": ρ, "uniformity": ρ, "n": number of rows used}``.

    Examples:
        >>> rows = [{"alignment": a, "uniformity": -a, "linear_acc": 1 - a} for a in (0.1, 0.2, 0.3)]
        >>> sweep_correlations(rows)
        {'alignment': -1.0, 'uniformity': 1.0, 'n': 3}
    """
    rows = numeric_rows(check_records(records), (alignment_key, uniformity_key, accuracy_key))
    accuracy = np.array([row[accuracy_key] for row in rows])
    return {
        "alignment": spearman(accuracy, np.array([row[alignment_key] for row in rows])),
        "uniformity": spearman(accuracy, np.array([row[uniformity_key] for row in rows])),
        "n": len(rows),
    }


def _format_rho(rho: float) -> str:
    return "n/a" if math.isnan(rho) else f"{rho:.2f}"


def plot_sweep_scatter(
    records: Sequence[dict],
    accuracy_key: str = "linear_acc",
    out: str | Path | None = None,
    *,
    alignment_key: str = "alignment",
    uniformity_key: str = "uniformity",
    collapsed_key: str | None = None,
) -> Figure:
    """Wang & Isola's (2020) correlation figure: one point per encoder.

    x = uniformity metric L_uniform (t = 2), y = alignment metric L_align (α = 2),
    colour = downstream accuracy (colour bar). The best encoders sit in the lower
    left. The Spearman correlations of accuracy with alignment and with
    uniformity (:func:`sweep_correlations`) are written in the upper left.

    Args:
        records: rows of a sweep (e.g. ``csv.DictReader`` rows of ``sweep.csv``)
            with numeric or numeric-string values; rows missing a value are skipped.
        accuracy_key: the accuracy column (e.g. ``linear_acc``, ``knn_acc``).
        out: when given, save ``<out>.png`` and ``<out>.svg``.
        alignment_key: the alignment column.
        uniformity_key: the uniformity column.
        collapsed_key: a column flagging collapsed encoders (``True`` / ``"true"`` / 1); when given, those
            points are ringed in red and counted in a legend.

    Returns:
        The matplotlib ``Figure``: the scatter axes and the colour bar axes.

    Raises:
        ValueError: no row has all three values.

    Examples:
        >>> rows = [{"alignment": a, "uniformity": -3 + a, "linear_acc": 0.8 - a} for a in (0.2, 0.4, 0.6)]
        >>> figure = plot_sweep_scatter(rows)
        >>> len(figure.axes)
        2
        >>> rows[2]["collapsed"] = True
        >>> plot_sweep_scatter(rows, collapsed_key="collapsed").axes[0].get_legend().get_texts()[0].get_text()
        'collapsed (1)'
    """
    keys = (uniformity_key, alignment_key, accuracy_key)
    kept = _complete_records(check_records(records), keys)
    if not kept:
        raise ValueError(f"no record has numeric values for all of {list(keys)}")
    rows = numeric_rows(kept, keys)
    uniformity, alignment, accuracy = (np.array([row[key] for row in rows]) for key in keys)
    correlations = sweep_correlations(rows, accuracy_key, alignment_key=alignment_key, uniformity_key=uniformity_key)

    figure = new_figure(5.8, 4.4)
    axes = figure.add_subplot()
    points = axes.scatter(
        uniformity, alignment, c=accuracy, cmap="viridis", s=30, edgecolors="black", linewidths=0.3, zorder=3
    )
    colorbar = figure.colorbar(points, ax=axes)
    colorbar.set_label(accuracy_key)
    if collapsed_key is not None:
        _ring_collapsed(axes, uniformity, alignment, _flags(kept, collapsed_key))
    axes.set_xlabel("uniformity  L_uniform (t = 2)")
    axes.set_ylabel("alignment  L_align (α = 2)")
    axes.set_title(f"{len(rows)} encoders (lower left is better)", fontsize=10)
    axes.grid(alpha=0.3, zorder=0)
    text = (
        f"Spearman ρ({accuracy_key}, alignment) = {_format_rho(correlations['alignment'])}\n"
        f"Spearman ρ({accuracy_key}, uniformity) = {_format_rho(correlations['uniformity'])}"
    )
    axes.text(
        0.02,
        0.98,
        text,
        transform=axes.transAxes,
        va="top",
        ha="left",
        fontsize=8,
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "0.7"},
        zorder=4,
    )
    return finish(figure, out)


def _complete_records(records: Sequence[Mapping], keys: Sequence[str]) -> list[Mapping]:
    """The records with a finite number in every key (the rows :func:`numeric_rows` keeps, unconverted)."""
    return [record for record in records if all(to_float(record.get(key)) is not None for key in keys)]


def _flags(records: Sequence[Mapping], key: str) -> np.ndarray:
    """A boolean per record: ``True``, ``"true"`` / ``"yes"`` / ``"1"`` (CSV text) or a non-zero number."""
    flags = []
    for record in records:
        value = record.get(key)
        if isinstance(value, str):
            flags.append(value.strip().lower() in ("true", "yes", "1", "1.0"))
        else:
            number = to_float(value)  # None for a bool: booleans are flags, not measurements
            flags.append(value is True or (number is not None and number != 0))
    return np.array(flags, dtype=bool)


def _ring_collapsed(axes: Axes, x: np.ndarray, y: np.ndarray, collapsed: np.ndarray) -> None:
    """Ring the collapsed points in red and say how many there are (a legend, even for none)."""
    axes.scatter(
        x[collapsed],
        y[collapsed],
        s=110,
        facecolors="none",
        edgecolors="red",
        linewidths=1.2,
        zorder=5,
        label=f"collapsed ({int(collapsed.sum())})",
    )
    axes.legend(loc="best", fontsize=8)


def _format_interval(interval: Sequence[float] | None) -> str:
    if interval is None or any(to_float(value) is None for value in interval):
        return ""
    low, high = interval
    return f", 95 % CI [{low:.2f}, {high:.2f}]"


def plot_metric_scatter(
    records: Sequence[dict],
    accuracy_key: str = "knn_acc",
    out: str | Path | None = None,
    *,
    metric_keys: Sequence[str] = ("alignment", "uniformity"),
    intervals: Mapping[str, Sequence[float] | None] | None = None,
    collapsed_key: str | None = None,
) -> Figure:
    """Accuracy against each metric, one panel per metric, with Spearman ρ (and its interval) in the title.

    The per-metric companion of :func:`plot_sweep_scatter` for Wang & Isola's (2020) claim: a negative ρ
    means a lower metric goes with a higher accuracy. ρ is computed here (:func:`aligniform.stats.spearman`
    over the rows with both values); its bootstrap interval is computed by the caller
    (:func:`aligniform.stats.bootstrap_rank_correlation`) and passed in ``intervals``.

    Args:
        records: rows of a sweep (dicts or ``csv.DictReader`` rows); a row missing a value is left out of that
            panel only.
        accuracy_key: the accuracy column (y of every panel).
        out: when given, save ``<out>.png`` and ``<out>.svg``.
        metric_keys: the metric columns, one panel each (x).
        intervals: per metric key, the ``(low, high)`` interval of ρ written after it in the title.
        collapsed_key: a column flagging collapsed encoders; those points are ringed in red.

    Returns:
        The matplotlib ``Figure`` (one axes per metric).

    Raises:
        ValueError: no row has the accuracy and any of the metrics.

    Examples:
        >>> rows = [{"alignment": a, "uniformity": -3 + a, "knn_acc": 0.9 - a} for a in (0.2, 0.4, 0.6)]
        >>> figure = plot_metric_scatter(rows, intervals={"alignment": (-1.0, -0.5)})
        >>> [axes.get_title() for axes in figure.axes]
        ['Spearman ρ = -1.00, 95 % CI [-1.00, -0.50] (n = 3)', 'Spearman ρ = -1.00 (n = 3)']
    """
    checked = check_records(records)
    panels = [(key, _complete_records(checked, (key, accuracy_key))) for key in metric_keys]
    if not any(kept for _, kept in panels):
        raise ValueError(f"no record has numeric values for {accuracy_key!r} and any of {list(metric_keys)}")
    figure = new_figure(4.2 * len(panels), 3.8)
    for index, (key, kept) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        rows = numeric_rows(kept, (key, accuracy_key))
        x, y = (np.array([row[name] for row in rows]) for name in (key, accuracy_key))
        axes.scatter(x, y, s=28, color="C0", edgecolors="black", linewidths=0.3, zorder=3)
        if collapsed_key is not None:
            _ring_collapsed(axes, x, y, _flags(kept, collapsed_key))
        rho = spearman(x, y) if len(rows) else math.nan
        interval = _format_interval((intervals or {}).get(key))
        axes.set_title(f"Spearman ρ = {_format_rho(rho)}{interval} (n = {len(rows)})", fontsize=9)
        axes.set_xlabel(_METRIC_LABELS.get(key, key))
        axes.set_ylabel(accuracy_key)
        axes.grid(alpha=0.3, zorder=0)
    return finish(figure, out)


#: Axis labels of the metrics measured as in Wang & Isola (2020).
_METRIC_LABELS = {"alignment": "alignment  L_align (α = 2)", "uniformity": "uniformity  L_uniform (t = 2)"}


#: The three panels of :func:`plot_temperature_curves`: (record key, y label, sign applied).
_TEMPERATURE_PANELS = (
    ("accuracy", "accuracy", 1.0),
    # Wang & Liu (2021) report −L_uniform(t = 2): higher means more uniform.
    ("uniformity", "uniformity  −L_uniform (t = 2)", -1.0),
    ("tolerance", "tolerance", 1.0),
)


def plot_temperature_curves(
    records: Sequence[dict],
    out: str | Path | None = None,
    *,
    accuracy_key: str = "accuracy",
    loss_key: str = "loss",
) -> Figure:
    """Wang & Liu's (2021) temperature study: accuracy, uniformity and tolerance against τ.

    Three panels share a log-scale τ axis: accuracy, uniformity plotted as
    −L_uniform(t = 2) (higher is more uniform, as Wang & Liu report) and
    tolerance. Each loss (e.g. ``contrastive``, ``hard_contrastive``) is one
    line; with several records (seeds) at one τ, each is a faint point and the
    line joins their means, with the sample standard deviation as error bars.
    Small τ gives high uniformity and low tolerance, large τ the reverse: the
    uniformity–tolerance dilemma.

    Args:
        records: dicts (or CSV rows) with keys ``loss``, ``tau``, ``accuracy``,
            ``uniformity`` (the L_uniform value, ≤ 0) and ``tolerance``. A
            missing value skips that point in that panel only.
        out: when given, save ``<out>.png`` and ``<out>.svg``.
        accuracy_key: the key holding accuracy (e.g. ``linear_acc`` for sweep rows).
        loss_key: the key naming the loss of each record.

    Returns:
        The matplotlib ``Figure`` (three axes).

    Raises:
        ValueError: no record has a positive numeric ``tau``.

    Examples:
        >>> rows = [{"loss": "contrastive", "tau": t, "accuracy": 0.8, "uniformity": -3.0, "tolerance": t / 2}
        ...         for t in (0.1, 0.3, 1.0)]
        >>> [axes.get_xscale() for axes in plot_temperature_curves(rows).axes]
        ['log', 'log', 'log']
    """
    records = check_records(records)
    by_loss: dict[str, list] = {}
    for record in records:
        tau = to_float(record.get("tau"))
        if tau is None or tau <= 0:
            continue
        by_loss.setdefault(str(record.get(loss_key) or "contrastive"), []).append((tau, record))
    if not by_loss:
        raise ValueError("no record has a positive numeric 'tau'")

    figure = new_figure(12.0, 3.6)
    for column, (key, label, sign) in enumerate(_TEMPERATURE_PANELS):
        axes = figure.add_subplot(1, 3, column + 1)
        key = accuracy_key if key == "accuracy" else key
        drawn = 0
        for index, (loss, points) in enumerate(sorted(by_loss.items())):
            by_tau: dict[float, list[float]] = {}
            for tau, record in points:
                value = to_float(record.get(key))
                if value is not None:
                    by_tau.setdefault(tau, []).append(sign * value)
            if not by_tau:
                continue
            color = f"C{index % 10}"
            taus = sorted(by_tau)
            means = [float(np.mean(by_tau[tau])) for tau in taus]
            if any(len(values) > 1 for values in by_tau.values()):
                # Several seeds: every run as a faint point, the mean ± sample standard deviation as the line.
                spreads = [float(np.std(by_tau[tau], ddof=1)) if len(by_tau[tau]) > 1 else 0.0 for tau in taus]
                xs = [tau for tau in taus for _ in by_tau[tau]]
                axes.plot(xs, [v for tau in taus for v in by_tau[tau]], ".", color=color, alpha=0.35, markersize=4)
                axes.errorbar(taus, means, yerr=spreads, fmt="o-", color=color, label=loss, markersize=4, capsize=2)
            else:
                axes.plot(taus, means, "o-", color=color, label=loss, markersize=4)
            drawn += 1
        if not drawn:
            axes.text(0.5, 0.5, f"no '{key}' values", transform=axes.transAxes, ha="center", color="0.5")
        axes.set_xscale("log")
        axes.set_xlabel("temperature τ")
        axes.set_ylabel(label)
        axes.set_title(label.split("  ")[0].capitalize(), fontsize=10)
        axes.grid(alpha=0.3, which="both")
    handles, names = figure.axes[0].get_legend_handles_labels()
    if not handles:  # the accuracy panel may be empty; take the legend from any panel
        for axes in figure.axes:
            handles, names = axes.get_legend_handles_labels()
            if handles:
                break
    if handles:
        figure.axes[0].legend(handles, names, fontsize=8)
    return finish(figure, out)
