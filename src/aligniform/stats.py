"""Small statistics shared by the studies and the figures: rank correlations and log–log slopes.

Rank correlations here never warn: where scipy would warn and return NaN (a
constant column) or give a meaningless value (fewer than 3 points), they return
NaN quietly, so a tiny or degenerate sweep reports "n/a" instead of noise.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._extras import requires_extra

with requires_extra("plots"):
    from scipy import stats as _scipy_stats

#: Fewest points a rank correlation is computed on (with 2, every correlation is ±1).
MIN_POINTS = 3


class RankCorrelation(NamedTuple):
    """A rank correlation and its two-sided p-value (both NaN when undefined)."""

    statistic: float
    pvalue: float


def rank_correlation(
    a: ArrayLike, b: ArrayLike, method: Literal["spearman", "kendall"] = "spearman"
) -> RankCorrelation:
    """Spearman's ρ or Kendall's τ-b of ``a`` and ``b`` with its p-value.

    NaN (no warning) with fewer than :data:`MIN_POINTS` points or a constant column.

    Examples:
        >>> rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]).statistic
        1.0
        >>> rank_correlation([1, 2, 3], [5, 5, 5])
        RankCorrelation(statistic=nan, pvalue=nan)
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"a and b must be two sequences of the same length, got shapes {x.shape} and {y.shape}")
    if len(x) < MIN_POINTS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return RankCorrelation(math.nan, math.nan)
    if method == "spearman":
        result = _scipy_stats.spearmanr(x, y)
    elif method == "kendall":
        result = _scipy_stats.kendalltau(x, y)
    else:
        raise ValueError(f"method must be 'spearman' or 'kendall', got {method!r}")
    return RankCorrelation(float(result.statistic), float(result.pvalue))


def spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman rank correlation ρ; NaN with fewer than 3 points or a constant column (no warning).

    Examples:
        >>> spearman([1, 2, 3], [3, 2, 1])
        -1.0
    """
    return rank_correlation(a, b, "spearman").statistic


def kendall(a: ArrayLike, b: ArrayLike) -> float:
    """Kendall rank correlation τ-b; NaN with fewer than 3 points or a constant column (no warning).

    Examples:
        >>> kendall([1, 2, 3, 4], [1, 3, 2, 4])
        0.6666666666666669
    """
    return rank_correlation(a, b, "kendall").statistic


def log_log_slope(x: ArrayLike, y: ArrayLike) -> float:
    """Least-squares slope of log|y| against log x (NaN when fewer than 2 usable points).

    Points with x ≤ 0, y = 0 or a non-finite y are left out.

    Examples:
        >>> round(log_log_slope([1, 10, 100], [2.0, 0.2, 0.02]), 6)
        -1.0
    """
    xs, ys = np.asarray(x, dtype=float), np.abs(np.asarray(y, dtype=float))
    keep = (xs > 0) & (ys > 0) & np.isfinite(ys)
    if keep.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(xs[keep]), np.log(ys[keep]), 1)[0])


# ----------------------------------------------------------------------------- bootstrap
# The pre-registered analysis of docs/results/correlation_design.md (section 3): 10,000 resamples of the
# encoders with replacement from ``numpy.random.default_rng(0)``, percentile 95 % intervals; resamples in
# which a column is constant are dropped and counted.

#: Resamples of a bootstrap (the design's 10,000).
BOOTSTRAP_RESAMPLES = 10_000
#: Seed of ``numpy.random.default_rng`` that draws the resamples.
BOOTSTRAP_SEED = 0
#: Level of the percentile intervals.
CONFIDENCE = 0.95


class BootstrapInterval(NamedTuple):
    """A statistic on the full sample and its percentile bootstrap interval.

    Attributes:
        estimate: the statistic on all ``n`` points (NaN when undefined).
        low: lower end of the percentile interval (NaN when no resample was usable).
        high: upper end of the percentile interval.
        n: points used (pairs with a non-finite value are left out).
        resamples: resamples the interval is computed from.
        dropped: resamples left out because a column was constant in them.
    """

    estimate: float
    low: float
    high: float
    n: int
    resamples: int
    dropped: int


def bootstrap_indices(
    n: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED, groups: ArrayLike | None = None
) -> np.ndarray:
    """Row indices of ``resamples`` bootstrap resamples of ``n`` points, one resample per row.

    Drawn with replacement by ``numpy.random.default_rng(seed)``: the same seed gives the same resamples, so
    every statistic of one sample bootstrapped with one seed sees the same resamples. Without ``groups``
    the draw is ``integers(0, n, (resamples, n))``. With ``groups`` (one label per point) the bootstrap is
    stratified: each group's points are resampled among themselves, so every resample keeps the design, e.g.
    three seeds at every temperature of a sweep over temperatures.

    Examples:
        >>> bootstrap_indices(4, resamples=2, seed=0).shape
        (2, 4)
        >>> bool((bootstrap_indices(5, 3, seed=1) == bootstrap_indices(5, 3, seed=1)).all())
        True
        >>> drawn = bootstrap_indices(4, resamples=100, groups=["a", "a", "b", "b"])
        >>> bool((drawn[:, :2] < 2).all() and (drawn[:, 2:] >= 2).all())
        True
    """
    for value, name in ((n, "n"), (resamples, "resamples")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.integers(0, n, size=(resamples, n))
    labels = np.asarray(groups)
    if labels.shape != (n,):
        raise ValueError(f"groups must hold one label per point ({n}), got shape {labels.shape}")
    indices = np.full((resamples, n), -1, dtype=np.int64)
    for label in dict.fromkeys(labels.tolist()):  # first-seen order: the draw does not depend on sorting labels
        members = np.flatnonzero(labels == label)
        if len(members):
            indices[:, members] = members[rng.integers(0, len(members), size=(resamples, len(members)))]
    if (indices[0] < 0).any():  # a label unequal to itself (NaN) belongs to no group
        raise ValueError("groups must be labels equal to themselves; got NaN among them")
    return indices


def percentile_interval(values: ArrayLike, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The central ``confidence`` percentile interval of ``values`` (NaN, NaN when empty).

    numpy's default (linear) interpolation between order statistics.

    Examples:
        >>> percentile_interval(np.arange(101), 0.9)
        (5.0, 95.0)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return math.nan, math.nan
    tail = round(50 * (1 - confidence), 12)  # 2.5 for 0.95, not 2.5000000000000022
    low, high = np.percentile(data, [tail, 100 - tail])
    return float(low), float(high)


def _finite_columns(columns: list[np.ndarray]) -> list[np.ndarray]:
    lengths = {column.shape for column in columns}
    if len(lengths) != 1 or columns[0].ndim != 1:
        shapes = ", ".join(str(column.shape) for column in columns)
        raise ValueError(f"the columns must be sequences of the same length, got shapes {shapes}")
    keep = np.logical_and.reduce([np.isfinite(column) for column in columns])
    return [column[keep] for column in columns]


def _not_constant(samples: np.ndarray) -> np.ndarray:
    """Which rows of a (resamples, n) array hold at least two different values."""
    return np.ptp(samples, axis=1) > 0


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman ρ of each row pair: Pearson correlation of average ranks (scipy's definition, ties included)."""
    rx = _scipy_stats.rankdata(x, axis=1)
    ry = _scipy_stats.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    return (rx * ry).sum(axis=1) / np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))


def _kendall_rows(x: np.ndarray, y: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Kendall τ-b of each row pair: Σ sign(Δx)·sign(Δy) / √(untied-in-x pairs · untied-in-y pairs).

    Over the pairs i < j; a pair tied in x (or y) adds 0 to the numerator and is not counted in that factor
    of the denominator, which is scipy's τ-b.
    """
    first, second = np.triu_indices(x.shape[1], k=1)
    result = np.empty(x.shape[0])
    for start in range(0, x.shape[0], chunk):
        rows = slice(start, start + chunk)
        sx = np.sign(x[rows, first] - x[rows, second])
        sy = np.sign(y[rows, first] - y[rows, second])
        result[rows] = (sx * sy).sum(axis=1) / np.sqrt((sx * sx).sum(axis=1) * (sy * sy).sum(axis=1))
    return result


def bootstrap_rank_correlation(
    a: ArrayLike,
    b: ArrayLike,
    method: Literal["spearman", "kendall"] = "spearman",
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
    groups: ArrayLike | None = None,
) -> BootstrapInterval:
    """Spearman's ρ or Kendall's τ-b of ``a`` and ``b`` with a percentile bootstrap interval.

    The points (pairs) are resampled with replacement (:func:`bootstrap_indices`, stratified by ``groups``
    when given); a resample in which ``a`` or ``b`` is constant has no rank correlation and is dropped and
    counted. Pairs with a non-finite value are left out first. With fewer than :data:`MIN_POINTS` points
    everything is NaN.

    Args:
        a: first sequence.
        b: second sequence, as long as ``a``.
        method: ``"spearman"`` or ``"kendall"`` (τ-b, as :func:`rank_correlation`).
        resamples: bootstrap resamples.
        seed: seed of ``numpy.random.default_rng`` drawing them.
        confidence: level of the percentile interval.
        groups: optional label per point; points are then resampled within their group (e.g. ``a`` = the
            temperature of each run and the groups the temperatures: the seeds of each temperature are
            resampled, every temperature stays in every resample).

    Returns:
        The :class:`BootstrapInterval` (the estimate is :func:`rank_correlation` on all points).

    Examples:
        >>> result = bootstrap_rank_correlation([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], resamples=500)
        >>> round(result.estimate, 6), result.n, result.resamples + result.dropped
        (0.8, 5, 500)
        >>> result.low < 0.8 < result.high <= 1.0
        True
    """
    if method not in ("spearman", "kendall"):
        raise ValueError(f"method must be 'spearman' or 'kendall', got {method!r}")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    labels = None
    if groups is not None:
        labels = np.asarray(groups)
        if labels.shape != x.shape:
            raise ValueError(f"groups must hold one label per point ({x.shape}), got shape {labels.shape}")
        labels = labels[np.isfinite(x) & np.isfinite(y)] if x.shape == y.shape else labels
    x, y = _finite_columns([x, y])
    n = len(x)
    estimate = rank_correlation(x, y, method).statistic
    if n < MIN_POINTS:
        return BootstrapInterval(math.nan, math.nan, math.nan, n, 0, 0)
    indices = bootstrap_indices(n, resamples, seed, groups=labels)
    xs, ys = x[indices], y[indices]
    usable = _not_constant(xs) & _not_constant(ys)
    statistic = _spearman_rows if method == "spearman" else _kendall_rows
    values = statistic(xs[usable], ys[usable])
    low, high = percentile_interval(values, confidence)
    return BootstrapInterval(estimate, low, high, n, int(usable.sum()), int(resamples - usable.sum()))


# ----------------------------------------------------------------------------- regression on standardised columns


def standardize(values: ArrayLike) -> np.ndarray:
    """z-scores ``(v - mean) / sd`` with the sample standard deviation (``ddof=1``).

    Raises:
        ValueError: fewer than 2 values or a constant column (no standard deviation).

    Examples:
        >>> standardize([1.0, 2.0, 3.0]).tolist()
        [-1.0, 0.0, 1.0]
    """
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or len(data) < 2 or np.ptp(data) == 0:
        raise ValueError("standardize needs a sequence of at least 2 values that are not all equal")
    return (data - data.mean()) / data.std(ddof=1)


class RegressionFit(NamedTuple):
    """Ordinary least squares of y on standardised columns: ``y = intercept + Σ coefficient_k · z(x_k)``.

    Attributes:
        intercept: β₀ (the mean of y).
        coefficients: β_k, the change of y per sample standard deviation of x_k (the others held fixed).
        r_squared: R² (NaN when y is constant).
        n: points used.
        intervals: percentile bootstrap interval (low, high) of each coefficient (empty without a bootstrap).
        resamples: resamples the intervals are computed from.
        dropped: resamples left out because a column (y or an x) was constant in them.
        collinear: resamples left out because their standardised columns were linearly dependent.
    """

    intercept: float
    coefficients: tuple[float, ...]
    r_squared: float
    n: int
    intervals: tuple[tuple[float, float], ...] = ()
    resamples: int = 0
    dropped: int = 0
    collinear: int = 0


def _least_squares(y: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """Coefficients [β₀, β...] of y on [1, z(columns)], R², and whether the design matrix had full rank."""
    design = np.column_stack([np.ones(len(y))] + [standardize(column) for column in columns])
    beta, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ beta
    total = float(((y - y.mean()) ** 2).sum())
    r_squared = 1 - float((residual**2).sum()) / total if total > 0 else math.nan
    return beta, r_squared, rank == design.shape[1]


def standardized_regression(
    y: ArrayLike,
    columns: list[ArrayLike] | tuple[ArrayLike, ...],
    *,
    bootstrap: bool = True,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> RegressionFit:
    """Least squares of ``y`` on the standardised ``columns``, with percentile bootstrap intervals.

    The model is ``y = β₀ + Σ_k β_k · z(x_k)`` with ``z`` = :func:`standardize` (sample standard deviation),
    fitted by ``numpy.linalg.lstsq``. Each bootstrap resample (:func:`bootstrap_indices`) standardises its own
    columns and is refitted; a resample in which a column (``y`` or any ``x_k``) is constant is dropped and
    counted in ``dropped``, one whose standardised columns are linearly dependent in ``collinear``. Rows with
    a non-finite value are left out first. With fewer points than ``len(columns) + 2`` (nothing left to
    estimate the fit's error from), or a constant column, everything is NaN.

    Args:
        y: the response, e.g. accuracy in points.
        columns: the predictors, each as long as ``y``, e.g. ``[alignment, uniformity]``.
        bootstrap: compute the intervals (else ``intervals`` is empty).
        resamples: bootstrap resamples.
        seed: seed of ``numpy.random.default_rng`` drawing them.
        confidence: level of the percentile intervals.

    Returns:
        The :class:`RegressionFit`.

    Examples:
        >>> a, u = [0.1, 0.2, 0.3, 0.4, 0.5], [1.0, 3.0, 2.0, 5.0, 4.0]
        >>> y = [10 - 2 * value for value in a]  # -2 per unit of a = -2 * sd(a) per standard deviation
        >>> fit = standardized_regression(y, [a, u], bootstrap=False)
        >>> round(fit.intercept, 6), round(fit.coefficients[0], 6), round(-2 * float(np.std(a, ddof=1)), 6)
        (9.4, -0.316228, -0.316228)
        >>> round(abs(fit.coefficients[1]), 9), round(fit.r_squared, 9)
        (0.0, 1.0)
    """
    data = _finite_columns([np.asarray(y, dtype=float)] + [np.asarray(column, dtype=float) for column in columns])
    response, predictors = data[0], np.array(data[1:])
    n, k = len(response), len(predictors)
    if k == 0:
        raise ValueError("standardized_regression needs at least one column")
    if n < k + 2 or any(np.ptp(column) == 0 for column in data):
        nan = (math.nan,) * k
        return RegressionFit(math.nan, nan, math.nan, n, ((math.nan, math.nan),) * k if bootstrap else ())
    beta, r_squared, _ = _least_squares(response, predictors)
    fit = RegressionFit(float(beta[0]), tuple(float(b) for b in beta[1:]), r_squared, n)
    if not bootstrap:
        return fit
    indices = bootstrap_indices(n, resamples, seed)
    usable = _not_constant(response[indices]) & np.logical_and.reduce(
        [_not_constant(column[indices]) for column in predictors]
    )
    estimates, collinear = [], 0
    for rows in indices[usable]:
        beta, _, full_rank = _least_squares(response[rows], predictors[:, rows])
        if full_rank:
            estimates.append(beta[1:])
        else:
            collinear += 1
    values = np.array(estimates).reshape(-1, k)
    intervals = tuple(percentile_interval(values[:, index], confidence) for index in range(k))
    return fit._replace(
        intervals=intervals, resamples=len(estimates), dropped=int(resamples - usable.sum()), collinear=collinear
    )
