"""Features of a 2-D encoder on the circle S¹ (Wang & Isola 2020, Figure 3)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from numpy.typing import ArrayLike

from .._extras import requires_extra
from .._numerics import is_finite_number
from ._figure import as_array, finish, new_figure

with requires_extra("plots"):
    from scipy.special import i0e
    from scipy.stats import gaussian_kde

#: Default vMF concentration κ of the angle KDE. The kernel's angular width is
#: about 1/√κ ≈ 0.1 rad (6°): fine enough to show clusters, smooth enough for a
#: few hundred points.
DEFAULT_KAPPA = 100.0
#: Panels (all classes + one per class) per band of the figure before it wraps.
MAX_COLUMNS = 6
#: The 2-D KDE uses at most this many points (a seeded subsample); the
#: estimate is already smooth at that size and evaluation cost is O(points · grid²).
KDE_MAX_POINTS = 3000
_GRID_SIZE = 121
_PLOT_LIMIT = 1.3
_ANGLE_POINTS = 721
# Bandwidth of the isotropic fallback kernel used when the points are collapsed.
_FALLBACK_SIGMA = 0.05
_CHUNK = 2048


def vmf_kde(
    angles: ArrayLike, grid: ArrayLike | None = None, kappa: float = DEFAULT_KAPPA
) -> tuple[np.ndarray, np.ndarray]:
    """Von Mises–Fisher kernel density estimate of angles on the circle.

    density(θ) = mean_i exp(κ cos(θ − θ_i)) / (2π I₀(κ)), which integrates to 1
    over any interval of length 2π. It is computed as
    exp(κ (cos(θ − θ_i) − 1)) / (2π i0e(κ)) with i0e(κ) = e^{−κ} I₀(κ), so
    neither the numerator nor I₀(κ) overflows for large κ.

    Args:
        angles: (N,) angles in radians, e.g. ``atan2(y, x)`` of 2-D features.
        grid: angles at which to evaluate the density; default 721 points on [−π, π].
        kappa: concentration κ > 0 (the inverse bandwidth: larger is sharper).

    Returns:
        ``(grid, density)`` as float64 arrays.

    Examples:
        >>> import numpy as np
        >>> from scipy.integrate import trapezoid
        >>> grid, density = vmf_kde(np.array([0.0, 1.0, 3.0]))
        >>> round(float(trapezoid(density, grid)), 3)
        1.0
    """
    angles = as_array(angles, "angles").ravel()
    if angles.size == 0:
        raise ValueError("angles must contain at least one angle")
    if not np.all(np.isfinite(angles)):
        raise ValueError("angles must be finite (no NaN or inf)")
    if not (is_finite_number(kappa) and kappa > 0):
        raise ValueError(f"kappa must be a positive finite number, got {kappa!r}")
    grid = np.linspace(-np.pi, np.pi, _ANGLE_POINTS) if grid is None else as_array(grid, "grid").ravel()
    total = np.zeros_like(grid)
    for start in range(0, angles.size, _CHUNK):  # chunks keep the (grid × N) buffer small
        chunk = angles[start : start + _CHUNK]
        total += np.exp(kappa * (np.cos(grid[:, None] - chunk[None, :]) - 1.0)).sum(axis=1)
    density = total / (angles.size * 2.0 * np.pi * i0e(kappa))
    return grid, density


def plot_hypersphere(
    features: ArrayLike,
    labels: ArrayLike | None = None,
    class_names: Sequence[str] | Mapping[int, str] | None = None,
    out: str | Path | None = None,
    *,
    kappa: float = DEFAULT_KAPPA,
    normalize: bool = False,
    max_columns: int = MAX_COLUMNS,
) -> Figure:
    """Draw 2-D features on the circle S¹, as in Wang & Isola (2020), Figure 3.

    Each panel shows one set of points in two views: on top a Gaussian KDE of
    the points in R² (``scipy.stats.gaussian_kde``) with the unit circle drawn,
    below a von Mises–Fisher KDE (:func:`vmf_kde`, concentration ``kappa``) of
    the angle θ = atan2(y, x) over [−π, π]. The first panel holds all points;
    with ``labels``, one more panel per class follows (labels < 0 count as
    unlabelled: they appear only in the first panel). Panels are laid out left
    to right, wrapping after ``max_columns``, so the figure has
    ``2 × (1 + number of classes)`` axes. A uniform encoder gives a flat angle
    density; an aligned one gives one tight peak per class.

    Args:
        features: (N, 2) unit-norm features (numpy array or tensor) of an encoder
            trained with output dimension 2.
        labels: optional (N,) integer class labels.
        class_names: names for the class panels, indexed by label (a list) or a
            dict label -> name; default "class <label>".
        out: when given, save ``<out>.png`` and ``<out>.svg``.
        kappa: vMF concentration of the angle KDE (default 100).
        normalize: L2-normalise the rows first instead of requiring unit norm.
        max_columns: panels per row of the figure before wrapping.

    Returns:
        The matplotlib ``Figure``.

    Raises:
        ValueError: features not of shape (N, 2), not finite, not unit-norm.

    Examples:
        >>> import numpy as np
        >>> theta = np.random.default_rng(0).uniform(-np.pi, np.pi, 200)
        >>> z = np.stack([np.cos(theta), np.sin(theta)], axis=1)
        >>> figure = plot_hypersphere(z, labels=np.arange(200) % 2, class_names=["cat", "dog"])
        >>> len(figure.axes)
        6
    """
    z = _circle_features(features, normalize)
    panels = [("all classes", z, "0.35")]
    if labels is not None:
        panels += _class_panels(z, labels, class_names)
    if max_columns < 1:
        raise ValueError(f"max_columns must be at least 1, got {max_columns}")
    columns = min(len(panels), max_columns)
    bands = math.ceil(len(panels) / columns)
    figure = new_figure(2.3 * columns, 3.7 * bands)
    grid = figure.add_gridspec(2 * bands, columns, height_ratios=[1.0, 0.6] * bands)
    rng = np.random.default_rng(0)
    for index, (name, points, color) in enumerate(panels):
        band, column = divmod(index, columns)
        density_axes = figure.add_subplot(grid[2 * band, column])
        angle_axes = figure.add_subplot(grid[2 * band + 1, column])
        _draw_density(density_axes, points, rng)
        density_axes.set_title(f"{name} (n={len(points)})", fontsize=9)
        _draw_angles(angle_axes, points, color, kappa)
    return finish(figure, out)


def _circle_features(features, normalize: bool) -> np.ndarray:
    z = as_array(features, "features")
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(
            f"plot_hypersphere needs features of shape (N, 2) on the circle S¹, got shape {tuple(z.shape)}; "
            "train the encoder with a 2-D output (`dim` 2) to draw this figure"
        )
    if z.shape[0] == 0:
        raise ValueError("features must contain at least one row")
    if not np.all(np.isfinite(z)):
        raise ValueError("features must be finite (no NaN or inf)")
    norms = np.linalg.norm(z, axis=1)
    if normalize:
        if np.any(norms == 0):
            raise ValueError("features contain an all-zero row, which cannot be normalised")
        return z / norms[:, None]
    if not np.allclose(norms, 1.0, atol=1e-3):
        raise ValueError(
            "features must be L2-normalised (rows of norm 1, points on S¹); "
            f"row norms range from {norms.min():.4g} to {norms.max():.4g}. Pass normalize=True to project them"
        )
    return z


def _class_panels(z: np.ndarray, labels, class_names) -> list[tuple[str, np.ndarray, str]]:
    labels = as_array(labels, "labels").ravel()
    if labels.shape[0] != z.shape[0]:
        raise ValueError(f"labels must have one entry per feature row ({z.shape[0]}), got {labels.shape[0]}")
    if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
        raise ValueError("labels must be integers")
    labels = labels.astype(np.int64)
    panels = []
    for rank, label in enumerate(np.unique(labels[labels >= 0])):
        color = f"C{rank % 10}"
        panels.append((_class_name(int(label), class_names), z[labels == label], color))
    return panels


def _class_name(label: int, class_names) -> str:
    if class_names is None:
        return f"class {label}"
    if isinstance(class_names, Mapping):
        return str(class_names.get(label, f"class {label}"))
    if 0 <= label < len(class_names):
        return str(class_names[label])
    raise ValueError(f"class_names has {len(class_names)} names but labels contain {label}")


def _draw_density(axes, points: np.ndarray, rng: np.random.Generator) -> None:
    if len(points) > KDE_MAX_POINTS:
        points = points[rng.choice(len(points), KDE_MAX_POINTS, replace=False)]
    coords = np.linspace(-_PLOT_LIMIT, _PLOT_LIMIT, _GRID_SIZE)
    grid_x, grid_y = np.meshgrid(coords, coords)
    grid = np.stack([grid_x.ravel(), grid_y.ravel()])
    density = _gaussian_density(points, grid).reshape(_GRID_SIZE, _GRID_SIZE)
    extent = (-_PLOT_LIMIT, _PLOT_LIMIT, -_PLOT_LIMIT, _PLOT_LIMIT)
    axes.imshow(density, origin="lower", extent=extent, cmap="viridis", interpolation="bilinear")
    axes.add_patch(Circle((0.0, 0.0), 1.0, fill=False, color="white", linewidth=0.8, linestyle="--", alpha=0.8))
    axes.set_aspect("equal")
    axes.set_xticks([-1, 0, 1])
    axes.set_yticks([-1, 0, 1])
    axes.tick_params(labelsize=7)
    axes.set_xlabel("$z_1$", fontsize=8, labelpad=1)
    axes.set_ylabel("$z_2$", fontsize=8, labelpad=1)


def _gaussian_density(points: np.ndarray, grid: np.ndarray) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            density = gaussian_kde(points.T)(grid)
        if np.all(np.isfinite(density)):
            return density
    except (np.linalg.LinAlgError, ValueError):
        pass
    # A collapsed encoder (all points equal, or on a line through the origin)
    # has a singular covariance, where gaussian_kde fails; an isotropic kernel
    # of fixed width still shows the collapse as a bright spot.
    density = np.zeros(grid.shape[1])
    for start in range(0, len(points), 256):
        chunk = points[start : start + 256]
        squared = ((grid[:, :, None] - chunk.T[:, None, :]) ** 2).sum(axis=0)
        density += np.exp(-squared / (2 * _FALLBACK_SIGMA**2)).sum(axis=1)
    return density / (len(points) * 2 * np.pi * _FALLBACK_SIGMA**2)


def _draw_angles(axes, points: np.ndarray, color: str, kappa: float) -> None:
    grid, density = vmf_kde(np.arctan2(points[:, 1], points[:, 0]), kappa=kappa)
    axes.fill_between(grid, density, color=color, alpha=0.35, linewidth=0)
    axes.plot(grid, density, color=color, linewidth=1.0)
    axes.set_xlim(-np.pi, np.pi)
    axes.set_ylim(bottom=0)
    axes.set_xticks([-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi], ["−π", "−π/2", "0", "π/2", "π"])
    axes.tick_params(labelsize=7)
    axes.set_xlabel("angle θ = atan2($z_2$, $z_1$)", fontsize=8, labelpad=1)
    axes.set_ylabel("vMF KDE", fontsize=8, labelpad=1)
