"""The budget study's decision rules (docs/results/budget_design.md, sections 1 and 4), on plain numbers.

Each claim is judged at each budget on its own, with the thresholds of the study that first failed it; the two
verdicts then give one outcome of the design's table (:func:`outcome`). The direction numbers (a difference, its
standard error and a bootstrap interval over seeds) are reported beside the verdicts and decide nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._numerics import is_finite_number
from ..stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, rank_correlation
from .common import difference_with_error, mean_and_sd, standard_error
from .verdicts import Verdict, by_margin

#: Design section 2, A: the weight ratios kept (w = align weight / uniform weight).
MODERATE_RATIOS = (0.25, 1.0, 4.0)
LARGE_RATIOS = (8.0,)
#: The ratio whose seed spread sets s of the margin max(1 point, 3s).
SPREAD_RATIO = 1.0
#: A ratio with fewer finished seeds than this makes claim A *not evaluable* at that budget.
MIN_SEEDS = 2
#: L_uniform(t = 2) above this (mean over seeds) is a collapsed encoder (the Figure 5 design's threshold).
COLLAPSE_THRESHOLD = -0.5
#: Design section 4, B: the τ of the claimed optimum and of today's best region.
CLAIMED_TAUS = (0.2, 0.3)
LOW_TAUS = (0.07, 0.1)

REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_EVALUABLE = (
    Verdict.REPRODUCED,
    Verdict.PARTLY,
    Verdict.NOT_REPRODUCED,
    Verdict.NOT_EVALUABLE,
)

#: Section 1's outcomes, fixed before the runs.
LONGER_BUDGET = "reproduced at the longer budget"
BOTH_BUDGETS = "reproduced at both budgets"
NEITHER = "not reproduced at either"
PARTLY_BOTH = "partly at both budgets"
UNEVALUABLE = "not evaluable"
BUDGET_DEPENDENT = "budget-dependent"


def outcome(today: str, longer: str) -> str:
    """The design's outcome (section 1) from the verdicts at today's budget and at 3×.

    Examples:
        >>> outcome("not reproduced", "reproduced"), outcome("partly", "reproduced")
        ('reproduced at the longer budget', 'reproduced at the longer budget')
        >>> outcome("reproduced", "reproduced"), outcome("not reproduced", "not reproduced")
        ('reproduced at both budgets', 'not reproduced at either')
        >>> outcome("partly", "partly"), outcome("not evaluable", "partly")
        ('partly at both budgets', 'not evaluable (today: not evaluable, 3×: partly)')
        >>> outcome("not reproduced", "partly")
        'budget-dependent (today: not reproduced, 3×: partly)'
        >>> outcome("reproduced", "not reproduced")
        'budget-dependent (today: reproduced, 3×: not reproduced)'
    """
    named = f"(today: {today}, 3×: {longer})"
    if NOT_EVALUABLE in (today, longer):
        return f"{UNEVALUABLE} {named}"
    if longer == REPRODUCED:
        return BOTH_BUDGETS if today == REPRODUCED else LONGER_BUDGET
    if today == longer == NOT_REPRODUCED:
        return NEITHER
    if today == longer == PARTLY:
        return PARTLY_BOTH
    return f"{BUDGET_DEPENDENT} {named}"


def seed_summary(values: Sequence[Any]) -> dict:
    """Mean, sample SD (n − 1) and count of the finite values (the shape :func:`difference_with_error` reads).

    Examples:
        >>> entry = seed_summary([97.0, 96.0, None, 98.0])
        >>> entry["value"], round(entry["value_std"], 6), entry["value_n"], entry["values"]
        (97.0, 1.0, 3, [97.0, 96.0, 98.0])
    """
    finite = [float(value) for value in values if is_finite_number(value)]
    mean, sd = mean_and_sd(finite)
    return {"value": mean, "value_std": sd, "value_n": len(finite), "values": finite}


def bootstrap_difference(
    first: dict[Any, list[float]],
    second: dict[Any, list[float]],
    statistic: Any,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float | None, float | None]:
    """95 % percentile interval of ``statistic(means)`` resampling the seeds within each group.

    ``first`` and ``second`` map a group (a ratio, an objective) to its seeds' values; every group is resampled
    with replacement on its own, its mean taken, and ``statistic`` gets ``{group: mean}`` of both dicts together.
    None when a group has no value.

    Examples:
        >>> low, high = bootstrap_difference({"a": [3.0, 4.0, 5.0]}, {"b": [1.0, 1.0, 1.0]},
        ...                                  lambda m: m["a"] - m["b"], resamples=2000)
        >>> 2.0 <= low <= high <= 4.0
        True
    """
    groups = {**first, **second}
    if not groups or any(len(values) == 0 for values in groups.values()):
        return None, None
    rng = np.random.default_rng(seed)
    draws = {}
    for group, values in groups.items():
        data = np.asarray(values, dtype=float)
        draws[group] = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    estimates = np.array([statistic({group: draws[group][i] for group in groups}) for i in range(resamples)])
    low, high = np.percentile(estimates, [2.5, 97.5])
    return float(low), float(high)


# ----------------------------------------------------------------------------- A: the weight ratio


def ratio_verdict(
    by_ratio: dict[float, dict[str, list[float]]],
    moderate: Sequence[float] = MODERATE_RATIOS,
    large: Sequence[float] = LARGE_RATIOS,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict:
    """Claim A at one budget on one dataset: *holds*, *fails* or *not evaluable*, with its numbers.

    Args:
        by_ratio: w -> ``{"accuracy": [points per seed], "uniformity": [L_uniform per seed]}``.
        moderate: the ratios that should work (not collapsed, within the margin of the best of them).
        large: the ratios that should collapse or fall further below than the margin.
        resamples: bootstrap resamples of the direction number's interval.

    The rule (design section 4): s is the seed SD of w = 1's accuracy, the margin max(1, 3s); the claim *holds*
    when every moderate ratio is not collapsed (mean L_uniform ≤ −0.5) and within the margin of the best moderate
    mean, and every large ratio is collapsed or further below the best than the margin; *not evaluable* when a
    ratio has fewer than 2 seeds.

    Examples:
        >>> seeds = lambda a, u: {"accuracy": [a - 0.5, a, a + 0.5], "uniformity": [u] * 3}
        >>> grid = {0.25: seeds(97, -3.8), 1.0: seeds(96.5, -3.6), 4.0: seeds(96, -3.0), 8.0: seeds(80, -0.1)}
        >>> result = ratio_verdict(grid, resamples=200)
        >>> result["verdict"], result["margin"], [e["as_predicted"] for e in result["ratios"]]
        ('holds', 1.5, [True, True, True, True])
        >>> grid[4.0] = seeds(90, -2.0)
        >>> ratio_verdict(grid, resamples=200)["verdict"]
        'fails'
    """
    entries = {}
    for w in (*moderate, *large):
        values = next((v for key, v in by_ratio.items() if math.isclose(key, w, rel_tol=1e-9)), None) or {}
        accuracy, uniformity = seed_summary(values.get("accuracy", [])), seed_summary(values.get("uniformity", []))
        collapsed = None if uniformity["value"] is None else uniformity["value"] > COLLAPSE_THRESHOLD
        entries[w] = {
            "w": w,
            "accuracy": accuracy["value"],
            "accuracy_std": accuracy["value_std"],
            "accuracy_n": accuracy["value_n"],
            "accuracies": accuracy["values"],
            "uniformity": uniformity["value"],
            "uniformities": uniformity["values"],
            "collapsed": collapsed,
            "collapsed_per_seed": [u > COLLAPSE_THRESHOLD for u in uniformity["values"]],
        }
    evaluable = all(entry["accuracy_n"] >= MIN_SEEDS and entry["collapsed"] is not None for entry in entries.values())
    spread = entries.get(SPREAD_RATIO, {}).get("accuracy_std")
    best = max((entries[w]["accuracy"] for w in moderate if entries[w]["accuracy"] is not None), default=None)
    margin = max(1.0, 3 * spread) if spread is not None else None
    checks = []
    for w, entry in entries.items():
        below = None if best is None or entry["accuracy"] is None else best - entry["accuracy"]
        entry["below_best"] = below
        if below is None or margin is None or entry["collapsed"] is None:
            entry["as_predicted"] = None
        elif w in moderate:
            entry["as_predicted"] = not entry["collapsed"] and below <= margin
        else:
            entry["as_predicted"] = entry["collapsed"] or below > margin
        checks.append(entry["as_predicted"])
    if not evaluable or margin is None or any(check is None for check in checks):
        verdict = NOT_EVALUABLE
    else:
        verdict = Verdict.HOLDS if all(checks) else Verdict.FAILS
    return {
        "verdict": verdict,
        "s": spread,
        "margin": margin,
        "best_moderate": best,
        "ratios": list(entries.values()),
        "shortfall": _shortfall(entries, moderate, resamples),
        "ratio_uniformity_spearman": _ratio_uniformity(entries),
    }


def _shortfall(entries: dict[float, dict], moderate: Sequence[float], resamples: int) -> dict:
    """The direction number: how far w = 4 (the largest moderate ratio) falls below the best moderate mean."""
    last = max(moderate)
    means = {w: entries[w]["accuracy"] for w in moderate}
    if any(mean is None for mean in means.values()):
        return {"w": last, "points": None, "standard_error": None, "low": None, "high": None}
    best = max(means, key=lambda w: means[w])
    points = means[best] - means[last]
    error = standard_error([_as_summary(entries[best]), _as_summary(entries[last])], "value") if best != last else 0.0
    low, high = bootstrap_difference(
        {w: entries[w]["accuracies"] for w in moderate},
        {},
        lambda m: max(m[w] for w in moderate) - m[last],
        resamples,
    )
    return {"w": last, "points": points, "standard_error": error, "low": low, "high": high}


def _as_summary(entry: dict) -> dict:
    return {"value": entry["accuracy"], "value_std": entry["accuracy_std"], "value_n": entry["accuracy_n"]}


def _ratio_uniformity(entries: dict[float, dict]) -> dict:
    known = [(w, entry["uniformity"]) for w, entry in entries.items() if entry["uniformity"] is not None]
    rho = rank_correlation([w for w, _ in known], [u for _, u in known]) if len(known) >= 3 else None
    return {"n": len(known), "spearman": rho.statistic if rho else None}


# ----------------------------------------------------------------------------- B: temperature


def temperature_direction(summary: list[dict]) -> dict:
    """B's direction number: best mean accuracy at τ ∈ {0.2, 0.3} minus the best at τ ∈ {0.07, 0.1}, in points.

    ``summary`` is the temperature study's per-(loss, τ) summary (``accuracy``, ``accuracy_std``, ``accuracy_n``).

    Examples:
        >>> rows = [{"loss": "contrastive", "tau": t, "accuracy": a, "accuracy_std": 0.001, "accuracy_n": 3}
        ...         for t, a in ((0.07, 0.97), (0.1, 0.971), (0.2, 0.969), (0.3, 0.968))]
        >>> entry = temperature_direction(rows)
        >>> round(entry["points"], 6), entry["claimed_tau"], entry["low_tau"]
        (-0.2, 0.2, 0.1)
    """
    plain = [entry for entry in summary if entry.get("loss") == "contrastive" and entry.get("accuracy") is not None]

    def best_of(taus: Sequence[float]) -> dict | None:
        members = [e for e in plain if any(math.isclose(e["tau"], tau) for tau in taus)]
        return max(members, key=lambda e: e["accuracy"]) if members else None

    claimed, low = best_of(CLAIMED_TAUS), best_of(LOW_TAUS)
    difference, error = difference_with_error(claimed, low, "accuracy")
    return {
        "points": None if difference is None else 100 * difference,
        "standard_error": None if error is None else 100 * error,
        "claimed_tau": claimed["tau"] if claimed else None,
        "low_tau": low["tau"] if low else None,
    }


# ----------------------------------------------------------------------------- C: debiased vs NT-Xent


def debiased_verdict(debiased: list[float], nt_xent: list[float], resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Claim C at one budget: d = mean(debiased) − mean(NT-Xent) in points, judged by :func:`by_margin`.

    Examples:
        >>> result = debiased_verdict([96.0, 96.5, 97.0], [95.0, 95.2, 95.4], resamples=500)
        >>> result["verdict"], round(result["difference"], 6)
        ('reproduced', 1.3)
    """
    first, second = seed_summary(debiased), seed_summary(nt_xent)
    difference, error = difference_with_error(first, second, "value")
    low, high = bootstrap_difference(
        {"debiased": first["values"]}, {"nt_xent": second["values"]}, lambda m: m["debiased"] - m["nt_xent"], resamples
    )
    return {
        "verdict": by_margin(difference, error),
        "difference": difference,
        "standard_error": error,
        "low": low,
        "high": high,
        "debiased": first,
        "nt_xent": second,
    }
