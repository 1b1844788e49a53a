"""The loss-family map: where each objective puts an encoder on Wang & Isola's alignment–uniformity plane."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ._figure import check_records, finish, new_figure, to_float

_MARKERS = "osD^vP*Xph<>"


def plot_family_map(
    records: Sequence[dict],
    out: str | Path | None = None,
    *,
    accuracy_key: str = "accuracy",
    objective_key: str = "objective",
) -> Figure:
    """Wang & Isola's Figure 5 for a family of objectives: uniformity on x, alignment on y, accuracy as colour.

    Each run is one point, its marker shape naming its objective (legend below
    the map); the mean over seeds is drawn larger, with error bars of the sample
    standard deviation in both directions when there are several seeds. Runs at
    another batch size than the most common one have a red edge and ``@b`` in
    the legend; a supervised objective (record ``supervised`` true) has ``†``.
    Lower left is better on both axes.

    Args:
        records: one dict per run with ``objective``, ``alignment``,
            ``uniformity`` (L_uniform, t = 2), ``accuracy_key`` and optionally
            ``batch_size`` and ``supervised``. Runs missing a value are skipped.
        out: when given, save ``<out>.png`` and ``<out>.svg``.
        accuracy_key: the colour (e.g. ``accuracy``, ``linear_acc``, ``knn_acc``).
        objective_key: the key naming each run's objective.

    Returns:
        The matplotlib ``Figure``: the map axes and the colour bar axes.

    Raises:
        ValueError: no record has alignment, uniformity and accuracy.

    Examples:
        >>> rows = [{"objective": o, "alignment": a, "uniformity": -3 + a, "accuracy": 0.9 + a / 10, "seed": s}
        ...         for o, a in (("contrastive", 0.4), ("decoupled", 0.5)) for s in (0, 1)]
        >>> len(plot_family_map(rows).axes)
        2
    """
    points = []
    for record in check_records(records):
        values = [to_float(record.get(key)) for key in ("uniformity", "alignment", accuracy_key)]
        if all(value is not None for value in values):
            batch = to_float(record.get("batch_size"))
            points.append((str(record.get(objective_key)), batch, bool(record.get("supervised")), *values))
    if not points:
        raise ValueError(f"no record has numeric uniformity, alignment and {accuracy_key}")
    batches = [batch for _, batch, *_ in points if batch is not None]
    usual_batch = max(set(batches), key=batches.count) if batches else None
    groups: dict[tuple[str, float | None], list] = {}
    for point in points:
        groups.setdefault((str(point[0]), to_float(point[1])), []).append(point)
    accuracy = np.array([p[5] for p in points])
    low, high = float(accuracy.min()), float(accuracy.max())
    if high == low:
        low, high = low - 0.005, high + 0.005

    figure = new_figure(7.0, 6.0)
    axes = figure.add_subplot()
    names = list(dict.fromkeys(name for name, *_ in points))
    scatter = None
    handles: list[Line2D] = []
    for (name, batch), members in groups.items():
        marker = _MARKERS[names.index(name) % len(_MARKERS)]
        u, a, acc = (np.array([m[i] for m in members]) for i in (3, 4, 5))
        hollow = batch is not None and batch != usual_batch
        style: dict[str, Any] = {"cmap": "viridis", "vmin": low, "vmax": high, "marker": marker, "zorder": 3}
        axes.scatter(u, a, c=acc, s=22, edgecolors="black", linewidths=0.3, alpha=0.6, **style)
        if len(members) > 1:
            axes.errorbar(
                u.mean(), a.mean(), xerr=u.std(ddof=1), yerr=a.std(ddof=1), color="0.3", lw=0.8, capsize=2, zorder=2
            )
        scatter = axes.scatter(
            [u.mean()],
            [a.mean()],
            c=[acc.mean()],
            s=90,
            edgecolors="red" if hollow else "black",
            linewidths=1.4 if hollow else 0.8,
            **style,
        )
        label = name + (" †" if members[0][2] else "") + (f" @{batch:g}" if hollow and batch is not None else "")
        edge = {"markeredgecolor": "red", "markeredgewidth": 1.4} if hollow else {"markeredgecolor": "black"}
        handles.append(Line2D([], [], marker=marker, linestyle="", color="0.75", markersize=8, label=label, **edge))
    assert scatter is not None
    colorbar = figure.colorbar(scatter, ax=axes)
    colorbar.set_label(accuracy_key)
    axes.set_xlabel("uniformity  L_uniform (t = 2)")
    axes.set_ylabel("alignment  L_align (α = 2)")
    seeds = max(len(members) for members in groups.values())
    detail = f", mean ± sd of {seeds} seeds" if seeds > 1 else ""
    axes.set_title(f"{len(names)} objectives (lower left is better{detail}; † sees labels)", fontsize=10)
    axes.grid(alpha=0.3, zorder=0)
    figure.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    return finish(figure, out)
