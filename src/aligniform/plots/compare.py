"""The alignment-uniformity plane of several encoders, each a point with its bootstrap intervals.

This is the picture of Wang & Isola (2020, Figure 5) and of SimCSE (Gao et al.
2021, Figure 2): uniformity on the x axis, alignment on the y axis, both lower
is better, so the best encoders sit towards the lower left.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from ._figure import finish, new_figure, to_float

__all__ = ["plot_compare_plane", "plane_points"]


def plane_points(inputs: Sequence[Mapping]) -> list[dict]:
    """The inputs of a comparison that have both alignment and uniformity, as plain points.

    Each point is ``{"name", "x", "x_low", "x_high", "y", "y_low", "y_high"}`` (x: uniformity, y: alignment);
    a missing interval end is the estimate itself (no error bar).

    Examples:
        >>> row = {"name": "a", "metrics": {"uniformity": {"estimate": -3.0, "low": -3.1, "high": -2.9},
        ...                                 "alignment": {"estimate": 0.5, "low": None, "high": None}}}
        >>> plane_points([row, {"name": "no pairs", "metrics": {"uniformity": None, "alignment": None}}])
        [{'name': 'a', 'x': -3.0, 'x_low': -3.1, 'x_high': -2.9, 'y': 0.5, 'y_low': 0.5, 'y_high': 0.5}]
    """
    points = []
    for row in inputs:
        metrics = row.get("metrics", {})
        uniformity, alignment = metrics.get("uniformity"), metrics.get("alignment")
        if not uniformity or not alignment:
            continue
        point: dict = {"name": str(row.get("name", ""))}
        for axis, value in (("x", uniformity), ("y", alignment)):
            estimate = to_float(value.get("estimate"))
            if estimate is None:  # to_float gives None for a missing or non-finite value
                break
            point[axis] = estimate
            for end in ("low", "high"):
                bound = to_float(value.get(end))
                point[f"{axis}_{end}"] = estimate if bound is None else bound
        else:
            points.append(point)
    return points


def plot_compare_plane(inputs: Sequence[Mapping], out: str | Path | None = None, *, title: str = "") -> Figure:
    """Alignment against uniformity, one point per input with its bootstrap intervals as error bars.

    Args:
        inputs: the ``inputs`` of :func:`aligniform.analysis.compare.compare_embeddings` (each with ``name``
            and ``metrics``); inputs without alignment (no positive pairs) are left out.
        out: when given, save ``<out>.png`` and ``<out>.svg``.
        title: the figure's title (default: one naming the axes).

    Returns:
        The matplotlib ``Figure`` (one axes).

    Raises:
        ValueError: no input has both alignment and uniformity.

    Examples:
        >>> rows = [{"name": n, "metrics": {"uniformity": {"estimate": u, "low": u - 0.1, "high": u + 0.1},
        ...                                  "alignment": {"estimate": a, "low": a - 0.05, "high": a + 0.05}}}
        ...         for n, u, a in (("a", -3.5, 0.4), ("b", -2.0, 0.2))]
        >>> figure = plot_compare_plane(rows)
        >>> figure.axes[0].get_xlabel()
        'uniformity (lower is better)'
    """
    points = plane_points(inputs)
    if not points:
        raise ValueError("no input has both alignment and uniformity to place on the plane")
    figure = new_figure(6.0, 4.4)
    axes = figure.add_subplot()
    colours = [f"C{index % 10}" for index in range(len(points))]
    for point, colour in zip(points, colours):
        axes.errorbar(
            point["x"],
            point["y"],
            xerr=[[point["x"] - point["x_low"]], [point["x_high"] - point["x"]]],
            yerr=[[point["y"] - point["y_low"]], [point["y_high"] - point["y"]]],
            fmt="o",
            color=colour,
            markersize=6,
            capsize=3,
            label=point["name"],
        )
        axes.annotate(point["name"], (point["x"], point["y"]), textcoords="offset points", xytext=(6, 5), fontsize=8)
    axes.set_xlabel("uniformity (lower is better)")
    axes.set_ylabel("alignment (lower is better)")
    axes.set_title(title or "Alignment-uniformity plane (95% bootstrap intervals)", fontsize=10)
    axes.grid(True, alpha=0.3)
    axes.margins(0.15)
    if len(points) > 1:
        axes.legend(loc="best", fontsize=8)
    return finish(figure, out)
