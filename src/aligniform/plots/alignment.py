"""Histogram of positive-pair feature distances (Wang & Isola 2020, alignment figure)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from ._figure import as_array, finish, new_figure


def positive_pair_distances(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """||x_i − y_i||₂ for each positive pair (rows of ``x`` and ``y``).

    Examples:
        >>> import numpy as np
        >>> positive_pair_distances(np.eye(2), np.eye(2)[::-1]).round(4).tolist()
        [1.4142, 1.4142]
    """
    x, y = as_array(x, "x"), as_array(y, "y")
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"x and y must be (N, d) feature matrices, got shapes {x.shape} and {y.shape}")
    if x.shape != y.shape:
        raise ValueError(
            f"x and y must have the same shape (row i of each is a positive pair), got {x.shape} and {y.shape}"
        )
    if x.shape[0] == 0:
        raise ValueError("x and y must contain at least one positive pair")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite (no NaN or inf)")
    return np.linalg.norm(x - y, axis=1)


def plot_alignment_histogram(x: ArrayLike, y: ArrayLike, out: str | Path | None = None, *, bins: int = 40) -> Figure:
    """Histogram of positive-pair distances ||f(x_i) − f(y_i)||₂ with their mean marked.

    This is Wang & Isola's (2020) alignment picture: a well-aligned encoder
    puts most positive pairs near distance 0. The dashed vertical line sits at
    the mean distance, i.e. L_align with α = 1; the legend also gives the
    default metric L_align(α = 2), the mean squared distance. On the unit
    sphere distances lie in [0, 2].

    Args:
        x: (N, d) features of the first views (numpy array or tensor).
        y: (N, d) features of the second views; row i pairs with ``x[i]``.
        out: when given, save ``<out>.png`` and ``<out>.svg``.
        bins: number of histogram bins.

    Returns:
        The matplotlib ``Figure`` (one axes).

    Examples:
        >>> import numpy as np
        >>> z = np.random.default_rng(0).normal(size=(100, 8))
        >>> z /= np.linalg.norm(z, axis=1, keepdims=True)
        >>> figure = plot_alignment_histogram(z, np.roll(z, 1, axis=0))
        >>> figure.axes[0].get_xlabel()
        'positive pair distance ||f(x) − f(y)||₂'
    """
    distances = positive_pair_distances(x, y)
    mean = float(distances.mean())
    squared_mean = float((distances**2).mean())
    figure = new_figure(5.0, 3.4)
    axes = figure.add_subplot()
    upper = max(2.0, float(distances.max()))  # keep the sphere's full [0, 2] range visible
    axes.hist(distances, bins=bins, range=(0.0, upper), color="tab:blue", alpha=0.75, edgecolor="white", linewidth=0.4)
    axes.axvline(
        mean,
        color="tab:red",
        linestyle="--",
        linewidth=1.5,
        label=f"mean = {mean:.3f}  (L_align(α=2) = {squared_mean:.3f})",
    )
    axes.set_xlim(0.0, upper)
    axes.set_ylim(0.0, 1.25 * max(patch.get_height() for patch in axes.patches))  # room for the legend
    axes.set_xlabel("positive pair distance ||f(x) − f(y)||₂")
    axes.set_ylabel("number of pairs")
    axes.set_title(f"Alignment: positive pair feature distances (n={len(distances)})", fontsize=10)
    axes.legend(loc="best", fontsize=8)
    return finish(figure, out)
