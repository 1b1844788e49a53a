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
