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


# ----------------------------------------------------------------------------- bootstrap intervals


def loop_bootstrap(columns, statistic, resamples, seed, confidence=0.95):
    """Plain reference: the same resamples, one scipy / lstsq call each, constant resamples skipped."""
    columns = [np.asarray(column, dtype=float) for column in columns]
    indices = np.random.default_rng(seed).integers(0, len(columns[0]), size=(resamples, len(columns[0])))
    values, dropped = [], 0
    for rows in indices:
        sample = [column[rows] for column in columns]
        if any(len(set(column)) == 1 for column in sample):
            dropped += 1
            continue
        values.append(statistic(*sample))
    values = np.array(values)
    tail = 50 * (1 - confidence)
    return np.percentile(values, [tail, 100 - tail], axis=0), dropped


@pytest.mark.parametrize("method", ["spearman", "kendall"])
def test_bootstrap_rank_correlation_matches_a_scipy_loop_on_the_same_resamples(method):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 6, size=9).astype(float)  # ties, and constant resamples now and then
    b = a + rng.integers(0, 4, size=9)
    scipy_statistic = scipy_stats.spearmanr if method == "spearman" else scipy_stats.kendalltau
    (low, high), dropped = loop_bootstrap([a, b], lambda x, y: scipy_statistic(x, y).statistic, 400, seed=7)
    result = stats.bootstrap_rank_correlation(a, b, method, resamples=400, seed=7)
    assert result.estimate == pytest.approx(scipy_statistic(a, b).statistic)
    assert (result.low, result.high) == pytest.approx((low, high), abs=1e-12)
    assert result.dropped == dropped and result.resamples == 400 - dropped and result.n == 9


def test_stratified_bootstrap_resamples_within_groups_and_matches_a_scipy_loop():
    # 3 seeds at each of 4 temperatures: every resample keeps 3 draws per temperature, from that temperature.
    taus = np.repeat([0.1, 0.2, 0.5, 1.0], 3)
    values = np.random.default_rng(4).normal(size=12) - taus
    indices = stats.bootstrap_indices(12, resamples=500, seed=3, groups=taus)
    assert (taus[indices] == taus).all() and not (indices == np.arange(12)).all()
    expected = []
    for rows in indices:  # taus are never constant within a resample, values almost surely not
        expected.append(scipy_stats.spearmanr(taus[rows], values[rows]).statistic)
    result = stats.bootstrap_rank_correlation(taus, values, resamples=500, seed=3, groups=taus)
    assert (result.low, result.high) == pytest.approx(tuple(np.percentile(expected, [2.5, 97.5])), abs=1e-12)
    assert result.estimate == pytest.approx(scipy_stats.spearmanr(taus, values).statistic)
    assert result.dropped == 0 and result.n == 12
    # The points with a non-finite value leave with their labels.
    holes = values.copy()
    holes[0] = math.nan
    assert stats.bootstrap_rank_correlation(taus, holes, resamples=50, groups=taus).n == 11
    with pytest.raises(ValueError, match="one label per point"):
        stats.bootstrap_rank_correlation(taus, values, groups=taus[:5])


def test_rank_correlation_kernels_on_hand_computed_ties():
    x, y = np.array([[1.0, 1.0, 2.0]]), np.array([[1.0, 2.0, 3.0]])
    # ranks (1.5, 1.5, 3) and (1, 2, 3): centred dot product 1.5, squared norms 1.5 and 2
    assert stats._spearman_rows(x, y)[0] == pytest.approx(1.5 / math.sqrt(3.0))
    # 2 concordant pairs, 0 discordant, 1 pair tied in x: 2 / sqrt((3 - 1) * (3 - 0))
    assert stats._kendall_rows(x, y)[0] == pytest.approx(2 / math.sqrt(6))


def test_bootstrap_is_deterministic_given_the_seed_and_counts_constant_resamples():
    a, b = [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]
    first = stats.bootstrap_rank_correlation(a, b, resamples=300, seed=0)
    assert first == stats.bootstrap_rank_correlation(a, b, resamples=300, seed=0)
    # every usable resample of a monotone pair has rho = 1; a resample of one point repeated is constant
    assert (first.low, first.high) == (1.0, 1.0)
    indices = np.random.default_rng(0).integers(0, 3, size=(300, 3))
    assert first.dropped == sum(len(set(rows)) == 1 for rows in indices.tolist()) > 0
    x, y = np.random.default_rng(0).normal(size=(2, 15))
    other = stats.bootstrap_rank_correlation(x, y, "kendall", resamples=300, seed=1)
    again = stats.bootstrap_rank_correlation(x, y, "kendall", resamples=300, seed=2)
    assert other.estimate == again.estimate and (other.low, other.high) != (again.low, again.high)


def test_bootstrap_rank_correlation_undefined_and_non_finite_cases():
    assert math.isnan(stats.bootstrap_rank_correlation([1, 2], [2, 1]).low)
    result = stats.bootstrap_rank_correlation([1, 2, 3, math.nan, 4], [1, 2, 3, 9, math.inf], resamples=50)
    assert result.n == 3 and result.estimate == pytest.approx(1.0)
    constant = stats.bootstrap_rank_correlation([1, 2, 3, 4], [5, 5, 5, 5], resamples=50)
    assert math.isnan(constant.estimate) and constant.dropped == 50 and math.isnan(constant.low)
    with pytest.raises(ValueError, match="method"):
        stats.bootstrap_rank_correlation([1, 2, 3], [1, 2, 3], "pearson")
    with pytest.raises(ValueError, match="same length"):
        stats.bootstrap_rank_correlation([1, 2, 3], [1, 2])


def test_percentile_interval():
    assert stats.percentile_interval(np.arange(201), 0.95) == (5.0, 195.0)
    assert all(math.isnan(value) for value in stats.percentile_interval([]))
    with pytest.raises(ValueError, match="confidence"):
        stats.percentile_interval([1.0], 1.0)


# ----------------------------------------------------------------------------- regression on standardised metrics


def test_standardized_regression_recovers_a_hand_made_linear_model():
    a = np.array([0.2, 0.4, 0.3, 0.9, 0.5, 0.7])
    u = np.array([-3.0, -2.0, -3.5, -1.0, -2.5, -3.2])
    za, zu = (a - a.mean()) / a.std(ddof=1), (u - u.mean()) / u.std(ddof=1)
    y = 90 - 4 * za - 2 * zu
    fit = stats.standardized_regression(y, [a, u], bootstrap=False)
    assert fit.intercept == pytest.approx(90) and fit.coefficients == pytest.approx((-4, -2))
    assert fit.r_squared == pytest.approx(1.0) and fit.n == 6 and fit.intervals == ()


def test_standardized_regression_intervals_match_a_lstsq_loop():
    rng = np.random.default_rng(5)
    a, u = rng.normal(size=12), rng.normal(size=12)
    y = 80 - 3 * a + rng.normal(size=12)

    def coefficients(y, a, u):
        design = np.column_stack([np.ones(len(y)), (a - a.mean()) / a.std(ddof=1), (u - u.mean()) / u.std(ddof=1)])
        return np.linalg.lstsq(design, y, rcond=None)[0][1:]

    (low, high), dropped = loop_bootstrap([y, a, u], coefficients, 300, seed=0)
    fit = stats.standardized_regression(y, [a, u], resamples=300, seed=0)
    assert fit.coefficients == pytest.approx(tuple(coefficients(y, a, u)))
    assert np.array(fit.intervals) == pytest.approx(np.column_stack([low, high]), abs=1e-10)
    assert fit.dropped == dropped == 0 and fit.collinear == 0 and fit.resamples == 300
    assert fit.intervals[0][1] < 0  # a strong negative effect: the interval lies below 0
    assert fit == stats.standardized_regression(y, [a, u], resamples=300, seed=0)
    # R² as 1 - SS_res / SS_tot of the same least-squares fit
    design = np.column_stack([np.ones(12), stats.standardize(a), stats.standardize(u)])
    residual = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    assert fit.r_squared == pytest.approx(1 - (residual**2).sum() / ((y - y.mean()) ** 2).sum())


def test_standardized_regression_degenerate_inputs():
    short = stats.standardized_regression([1.0, 2.0, 3.0], [[1.0, 2.0, 4.0], [3.0, 1.0, 2.0]], resamples=20)
    assert math.isnan(short.intercept) and math.isnan(short.intervals[1][0]) and short.n == 3
    constant = stats.standardized_regression([1.0, 2.0, 3.0, 4.0], [[1.0, 1.0, 1.0, 1.0]], bootstrap=False)
    assert math.isnan(constant.coefficients[0])
    # tiny samples: constant and collinear resamples are dropped, counted, and the rest is still used
    fit = stats.standardized_regression([1.0, 3.0, 2.0, 5.0], [[1.0, 2.0, 3.0, 4.0]], resamples=200, seed=0)
    assert fit.resamples + fit.dropped + fit.collinear == 200 and fit.dropped > 0 and fit.resamples > 0
    with pytest.raises(ValueError, match="at least 2 values"):
        stats.standardize([2.0, 2.0])
