"""The correlation study's statistics and decision rules (design sections 3, 4 and 6)."""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np

from .._numerics import is_finite_number as _finite
from ..stats import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    bootstrap_rank_correlation,
    rank_correlation,
    standardized_regression,
)
from .correlation_data import (
    ACCURACIES,
    CONTRADICTED,
    FAILS,
    HOLDS,
    LARGE_RATIOS,
    METRICS,
    MODERATE_RATIOS,
    NOT_EVALUABLE,
    NOT_SHOWN,
    PARTLY,
    PRECONDITION_RATIO,
    PRIMARY_ACCURACY,
    REPRODUCES,
    _all_finite,
    _at_base,
    _points,
    base_settings,
    encoder_role,
)

# ----------------------------------------------------------------------------- correlations and regression


def interval_verdict(low: float | None, high: float | None) -> str:
    """The design's rule for one metric: *reproduces* when ρ's interval lies below 0, *contradicted* above 0.

    Examples:
        >>> interval_verdict(-0.6, -0.1), interval_verdict(0.1, 0.5), interval_verdict(-0.3, 0.2)
        ('reproduces', 'contradicted', 'not shown')
    """
    if not (_finite(low) and _finite(high)):
        return NOT_SHOWN
    if high < 0:
        return REPRODUCES
    if low > 0:
        return CONTRADICTED
    return NOT_SHOWN


def regression_verdict(alignment: tuple[float, float], uniformity: tuple[float, float]) -> str:
    """The design's rule for "both low is best": *reproduces* when both β intervals lie below 0, *partly* when one does.

    Examples:
        >>> regression_verdict((-2.0, -0.5), (-1.0, -0.1)), regression_verdict((-2.0, -0.5), (-1.0, 0.3))
        ('reproduces', 'partly')
    """
    below = [_finite(high) and high < 0 for _, high in (alignment, uniformity)]
    return REPRODUCES if all(below) else PARTLY if any(below) else NOT_SHOWN


def _columns(rows: list[dict], keys: tuple[str, ...]) -> list[np.ndarray]:
    """The columns ``keys`` over the rows where all are finite (accuracies in points)."""
    kept = [row for row in rows if all(_finite(row.get(key)) for key in keys)]
    return [
        np.array([_points(row[key]) if key in ACCURACIES else float(row[key]) for row in kept], dtype=float)
        for key in keys
    ]


def _interval(result: Any) -> tuple[float, float]:
    return (result.low, result.high)


def correlation_analysis(rows: list[dict], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """The design's section 3 over ``rows``: correlations, regressions and the trade-off, with their verdicts.

    Returns:
        ``{"runs", "correlations": {"<metric>~<accuracy>": ...}, "regressions": {accuracy: ...},
        "tradeoff": ...}``. A correlation holds ``n``, ``spearman``, ``spearman_p``, ``spearman_low`` /
        ``_high``, the same for ``kendall``, ``resamples``, ``dropped`` and ``verdict``; a regression holds
        ``n``, ``intercept``, ``beta_alignment`` / ``beta_uniformity`` with ``_low`` / ``_high``, ``r_squared``,
        ``resamples``, ``dropped``, ``collinear`` and ``verdict``. Accuracy pairs with no value are left out.
    """
    correlations: dict[str, dict] = {}
    regressions: dict[str, dict] = {}
    for accuracy in ACCURACIES:
        if not any(_finite(row.get(accuracy)) for row in rows):
            continue
        for metric in METRICS:
            correlations[f"{metric}~{accuracy}"] = _correlation_entry(rows, metric, accuracy, resamples, seed)
        y, alignment, uniformity = _columns(rows, (accuracy, *METRICS))
        fit = standardized_regression(y, [alignment, uniformity], resamples=resamples, seed=seed)
        regressions[accuracy] = {
            "n": fit.n,
            "intercept": fit.intercept,
            "beta_alignment": fit.coefficients[0],
            "beta_alignment_low": fit.intervals[0][0],
            "beta_alignment_high": fit.intervals[0][1],
            "beta_uniformity": fit.coefficients[1],
            "beta_uniformity_low": fit.intervals[1][0],
            "beta_uniformity_high": fit.intervals[1][1],
            "r_squared": fit.r_squared,
            "resamples": fit.resamples,
            "dropped": fit.dropped,
            "collinear": fit.collinear,
            "verdict": regression_verdict(fit.intervals[0], fit.intervals[1]),
        }
    tradeoff = _correlation_entry(rows, "alignment", "uniformity", resamples, seed)
    del tradeoff["verdict"]  # a description of the encoders, not a test of the claim
    return {"runs": len(rows), "correlations": correlations, "regressions": regressions, "tradeoff": tradeoff}


def _correlation_entry(rows: list[dict], first: str, second: str, resamples: int, seed: int) -> dict:
    x, y = _columns(rows, (first, second))
    entry: dict[str, Any] = {"n": len(x)}
    for method in ("spearman", "kendall"):
        point = rank_correlation(x, y, method) if len(x) else None
        result = bootstrap_rank_correlation(x, y, method, resamples=resamples, seed=seed)
        entry[method] = point.statistic if point else math.nan
        entry[f"{method}_p"] = point.pvalue if point else math.nan
        entry[f"{method}_low"], entry[f"{method}_high"] = _interval(result)
        entry["resamples"], entry["dropped"] = result.resamples, result.dropped
    entry["verdict"] = interval_verdict(entry["spearman_low"], entry["spearman_high"])
    return entry


def rank_correlations(rows: list[dict]) -> dict:
    """Spearman and Kendall correlations of each metric with linear and 5-NN accuracy (no bootstrap).

    Runs missing a value are left out of that pair; fewer than 3 runs give ``None``.
    """
    table: dict[str, dict[str, Any]] = {}
    for metric in METRICS:
        for accuracy in ("linear_acc", "knn_acc"):
            pairs = [
                (row[metric], row[accuracy]) for row in rows if _finite(row.get(metric)) and _finite(row.get(accuracy))
            ]
            if len(pairs) < 3:
                table[f"{metric}~{accuracy}"] = {"n": len(pairs), "spearman": None, "kendall": None}
                continue
            xs, ys = zip(*pairs)
            spearman = rank_correlation(xs, ys, "spearman")
            kendall = rank_correlation(xs, ys, "kendall")
            table[f"{metric}~{accuracy}"] = {
                "n": len(pairs),
                "spearman": spearman.statistic,
                "spearman_p": spearman.pvalue,
                "kendall": kendall.statistic,
                "kendall_p": kendall.pvalue,
            }
    return table


# ----------------------------------------------------------------------------- ablation (design section 4)


def _all(checks: list[bool | None]) -> bool | None:
    """Three-valued AND: False if any is False, True if all are True, else unknown (None)."""
    return False if any(check is False for check in checks) else True if all(checks) else None


def _any(checks: list[bool | None]) -> bool | None:
    """Three-valued OR: True if any is True, False if all are False, else unknown (None)."""
    return True if any(check is True for check in checks) else False if all(c is False for c in checks) else None


def _combine(checks: list[bool | None], complete: bool) -> str:
    """*fails* if any check failed; *holds* if all passed and every pre-stated encoder finished; else unknown."""
    if any(check is False for check in checks):
        return FAILS
    if complete and checks and all(check is True for check in checks):
        return HOLDS
    return NOT_EVALUABLE


def _encoder_numbers(row: dict) -> dict:
    return {
        "run": row.get("run"),
        "objective": row.get("objective"),
        "alignment": row.get("alignment"),
        "uniformity": row.get("uniformity"),
        "accuracy": _points(row.get(PRIMARY_ACCURACY)),
        "collapsed": row.get("collapsed"),
    }


def _ratio_rows(rows: list[dict], ratios: tuple[float, ...]) -> tuple[list[tuple[float, dict]], list[float]]:
    """The (w, row) of each pre-stated ratio that finished, and the ratios that did not."""
    found, missing = [], []
    for ratio in ratios:
        matches = [row for row in rows if math.isclose(row["_role"][1], ratio, rel_tol=1e-9)]
        if matches:
            found.append((ratio, matches[0]))
        else:
            missing.append(ratio)
    return found, missing


def ablation_predictions(rows: list[dict], seed_sd: float | None) -> dict:
    """The design's three ablation predictions, each *holds* / *fails* / *not evaluable*, with their numbers.

    Only encoders at the grid's base settings (:func:`base_settings`) take part. The accuracy is the primary
    one in points; ``seed_sd`` (points) is s of the design; without it the checks that need s are unknown.

    1. align(α = 2) and align(α = 1) alone are collapsed.
    2. uniform(t = 2) alone has a higher alignment than every α = 2 encoder with w ≤ 4 (:data:`MODERATE_RATIOS`,
       align + uniform included) and an accuracy more than 3s below their median.
    3. Every moderate encoder is not collapsed and within max(1 point, 3s) of the best of them; w = 8 and 16
       (:data:`LARGE_RATIOS`) are each collapsed or further below. Also reported: Spearman ρ of w with
       uniformity across all α = 2, t = 2 weight ratios.
    """
    base = base_settings(rows)
    roles = [{**row, "_role": encoder_role(row)} for row in rows if _at_base(row, base)]
    by_role = {
        name: [row for row in roles if row["_role"] and row["_role"][0] == name]
        for name in ("align alone", "uniform alone", "ratio")
    }
    s = seed_sd if _finite(seed_sd) else None

    # 1. alignment alone collapses
    alone = {alpha: next((r for r in by_role["align alone"] if r["_role"][1] == alpha), None) for alpha in (2.0, 1.0)}
    first = {
        "prediction": "align(α = 2) and align(α = 1) alone are collapsed (L_uniform > threshold)",
        "encoders": {f"align(alpha={alpha:g})": _encoder_numbers(row) if row else None for alpha, row in alone.items()},
    }
    first["result"] = _combine(
        [row.get("collapsed") if row else None for row in alone.values()], all(row for row in alone.values())
    )

    # 2. uniformity alone lacks invariance
    moderate, missing_moderate = _ratio_rows(by_role["ratio"], MODERATE_RATIOS)
    uniform = next((r for r in by_role["uniform alone"] if r["_role"][1] == 2.0), None)
    moderate_alignment = _all_finite([row.get("alignment") for _, row in moderate])
    moderate_accuracy = _all_finite([_points(row.get(PRIMARY_ACCURACY)) for _, row in moderate])
    higher_alignment: bool | None = None
    median_gap: float | None = None
    uniform_alignment = uniform.get("alignment") if uniform else None
    if _finite(uniform_alignment) and moderate_alignment:
        higher_alignment = uniform_alignment > max(moderate_alignment)
    median = statistics.median(moderate_accuracy) if moderate_accuracy else None
    uniform_accuracy = _points(uniform.get(PRIMARY_ACCURACY)) if uniform else None
    if median is not None and uniform_accuracy is not None:
        median_gap = median - uniform_accuracy
    far_below = None if median_gap is None or s is None else median_gap > 3 * s
    second = {
        "prediction": "uniform(t = 2) alone has a higher alignment than every α = 2 encoder with w ≤ 4 and an "
        "accuracy more than 3s below their median",
        "uniform_alone": _encoder_numbers(uniform) if uniform else None,
        "moderate_ratios": [ratio for ratio, _ in moderate],
        "missing_ratios": missing_moderate,
        "max_moderate_alignment": max(moderate_alignment) if moderate_alignment else None,
        "higher_alignment": higher_alignment,
        "median_moderate_accuracy": median,
        "accuracy_below_median": median_gap,
        "three_s": 3 * s if s is not None else None,
        "accuracy_more_than_3s_below": far_below,
    }
    second["result"] = _combine([higher_alignment, far_below], bool(uniform) and not missing_moderate)

    # 3. the weighted sum works at moderate ratios
    large, missing_large = _ratio_rows(by_role["ratio"], LARGE_RATIOS)
    best = max(moderate_accuracy) if moderate_accuracy else None
    margin = max(1.0, 3 * s) if s is not None else None
    checks: list[bool | None] = []
    encoders = []
    for ratio, row in moderate + large:
        accuracy = _points(row.get(PRIMARY_ACCURACY))
        below = best - accuracy if best is not None and accuracy is not None else None
        collapsed = row.get("collapsed")
        if ratio in MODERATE_RATIOS:  # not collapsed AND within the margin of the best
            within = None if below is None or margin is None else below <= margin
            check = _all([None if collapsed is None else not collapsed, within])
        else:  # collapsed OR further below than the margin
            further = None if below is None or margin is None else below > margin
            check = _any([collapsed, further])
        checks.append(check)
        encoders.append({"w": ratio, **_encoder_numbers(row), "below_best": below, "as_predicted": check})
    family = [row for row in by_role["ratio"] if _finite(row.get("uniformity"))]
    rho = rank_correlation([row["_role"][1] for row in family], [row["uniformity"] for row in family])
    third = {
        "prediction": "every α = 2 encoder with w ≤ 4 is not collapsed and within max(1, 3s) points of the best of "
        "them; w = 8 and 16 are collapsed or further below",
        "best_moderate_accuracy": best,
        "margin": margin,
        "encoders": encoders,
        "missing_ratios": missing_moderate + missing_large,
        "ratio_uniformity_spearman": {"n": len(family), "spearman": rho.statistic, "p": rho.pvalue},
    }
    third["result"] = _combine(checks, not missing_moderate and not missing_large)
    return {
        "base_settings": base,
        "seed_sd": s,
        "alignment_alone_collapses": first,
        "uniformity_alone_lacks_invariance": second,
        "moderate_ratios_work": third,
    }


def precondition(rows: list[dict], seed_spread: dict | None) -> dict:
    """The seed-spread precondition: across-encoder sd of the primary accuracy ≥ 3 × the seed sd (section 6).

    Decided over all encoders; the ratio without the collapsed ones is reported beside it.
    """
    spread = {}
    for name, subset in (("all", rows), ("without_collapsed", [row for row in rows if row.get("collapsed") is False])):
        values = [100.0 * value for row in subset if _finite(value := row.get(PRIMARY_ACCURACY))]
        spread[name] = statistics.stdev(values) if len(values) >= 2 else None
    seed_sd = seed_spread["sd"].get(PRIMARY_ACCURACY) if seed_spread else None
    ratios = {name: value / seed_sd if value is not None and seed_sd else None for name, value in spread.items()}
    holds = None if ratios["all"] is None else ratios["all"] >= PRECONDITION_RATIO
    return {
        "seed_sd": seed_sd,
        "encoder_sd": spread["all"],
        "encoder_sd_without_collapsed": spread["without_collapsed"],
        "ratio": ratios["all"],
        "ratio_without_collapsed": ratios["without_collapsed"],
        "required_ratio": PRECONDITION_RATIO,
        "result": NOT_EVALUABLE if holds is None else HOLDS if holds else FAILS,
    }
