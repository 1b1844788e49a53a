"""Rank correlations and log-log slopes (aligniform.stats) against scipy, and their quiet NaN cases."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats

from aligniform import stats


def test_rank_correlations_match_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=20), rng.normal(size=20)
    assert stats.spearman(a, b) == pytest.approx(scipy_stats.spearmanr(a, b).statistic)
    assert stats.kendall(a, b) == pytest.approx(scipy_stats.kendalltau(a, b).statistic)
    result = stats.rank_correlation(a, b, "kendall")
    assert result.pvalue == pytest.approx(scipy_stats.kendalltau(a, b).pvalue)


@pytest.mark.parametrize(("a", "b"), [([1, 2], [2, 1]), ([1, 2, 3], [4, 4, 4]), ([5, 5, 5], [1, 2, 3])])
def test_rank_correlations_are_nan_without_a_warning_when_undefined(a, b):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(stats.spearman(a, b)) and math.isnan(stats.kendall(a, b))


def test_rank_correlation_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="same length"):
        stats.spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="method"):
        stats.rank_correlation([1, 2, 3], [1, 2, 3], "pearson")


def test_log_log_slope():
    m = np.array([1, 4, 16, 64])
    assert stats.log_log_slope(m, 3.0 / m) == pytest.approx(-1.0)
    assert stats.log_log_slope(m, -3.0 / m**2) == pytest.approx(-2.0)  # the sign of y is ignored
    assert math.isnan(stats.log_log_slope([1, 2], [0.0, 1.0]))
