"""The temperature study's statistics and pre-registered rules: means over seeds, trends over τ, verdicts."""

from __future__ import annotations

import math

from .._numerics import is_finite_number
from ..stats import bootstrap_rank_correlation, spearman
from .common import (
    difference_with_error,
)
from .common import summarize as summarize_over_seeds
from .verdicts import Verdict

#: −L_uniform below this (a mean Gaussian potential above e⁻¹ between test outputs; an untrained convnet measures
#: 2.35) flags a run as near collapse; such runs are listed in the report and stay in the trends.
NEAR_COLLAPSE = 1.0


#: The per-(loss, τ) summary's metrics: mean and sample standard deviation over seeds.
SUMMARY_METRICS = ("accuracy", "linear_acc", "knn_acc", "neg_uniformity", "tolerance", "alignment")


def summarize(rows: list[dict]) -> list[dict]:
    """Per (loss, τ): the mean and sample standard deviation over seeds of each of :data:`SUMMARY_METRICS`.

    Examples:
        >>> rows = [{"loss": "contrastive", "tau": 0.2, "accuracy": a, "near_collapse": False} for a in (0.9, 0.8)]
        >>> entry = summarize(rows)[0]
        >>> round(entry["accuracy"], 6), round(entry["accuracy_std"], 6), entry["seeds"]
        (0.85, 0.070711, 2)
    """
    return summarize_over_seeds(rows, ("loss", "tau"), SUMMARY_METRICS, counts=True, extra=_collapsed)


def _collapsed(members: list[dict]) -> dict:
    return {"near_collapse": sum(bool(member.get("near_collapse")) for member in members)}


def _rank_trend(mine: list[dict], key: str, resamples: int) -> dict:
    """Spearman ρ of τ with ``key`` over the runs, its stratified bootstrap interval and ρ of the means."""
    runs = [r for r in mine if r.get(key) is not None]
    taus = [r["tau"] for r in runs]
    values = [r[key] for r in runs]
    interval = bootstrap_rank_correlation(taus, values, resamples=resamples, groups=taus)
    means = summarize(runs)
    return {
        "rho": interval.estimate,
        "low": interval.low,
        "high": interval.high,
        "runs": interval.n,
        "rho_of_means": spearman([m["tau"] for m in means], [m[key] for m in means]),
    }


def _sign_verdict(trend: dict, expected_sign: int) -> str:
    """``reproduces`` when the interval of ρ lies on the paper's side of 0, ``partly`` when only the
    estimate does, else ``not reproduced`` (``not evaluable`` without an estimate).
    """
    rho, low, high = trend["rho"], trend["low"], trend["high"]
    if not is_finite_number(rho):
        return Verdict.NOT_EVALUABLE
    if is_finite_number(low) and is_finite_number(high) and (high < 0 if expected_sign < 0 else low > 0):
        return Verdict.REPRODUCES
    return Verdict.PARTLY if rho * expected_sign > 0 else Verdict.NOT_REPRODUCED


#: Temperatures where the hard loss's uniformity is compared with the plain loss's ("large τ").
LARGE_TAUS = (0.5, 0.7, 1.0)
#: Temperatures where Wang & Liu's plain contrastive loss is most accurate.
BEST_TAUS = (0.2, 0.3)


def trends(rows: list[dict], resamples: int = 10_000) -> dict:
    """Per loss: Spearman ρ over τ of −L_uniform (Wang & Liu: negative) and of tolerance (positive).

    ρ is computed over all runs (every seed of every τ); its 95 % percentile interval comes from a
    bootstrap that resamples the seeds within each τ (:func:`aligniform.stats.bootstrap_rank_correlation`
    with ``groups``), so every τ stays in every resample. ``rho_of_means`` is ρ over the per-τ means.
    Runs near collapse (see :data:`NEAR_COLLAPSE`) stay in (a τ whose runs collapse at this budget is a
    result about that τ); the report lists them.
    """
    summary = {}
    for loss in dict.fromkeys(r["loss"] for r in rows):
        mine = [r for r in rows if r["loss"] == loss]  # each trend drops the runs missing its own metric
        means = summarize(mine)
        best = max(means, key=lambda m: m["accuracy"] if m["accuracy"] is not None else -1, default=None)
        uniformity = _rank_trend(mine, "neg_uniformity", resamples)
        tolerance = _rank_trend(mine, "tolerance", resamples)
        summary[loss] = {
            "spearman_tau_uniformity": uniformity["rho"],
            "spearman_tau_tolerance": tolerance["rho"],
            "uniformity": uniformity,
            "tolerance": tolerance,
            "best_tau": best["tau"] if best else None,
            "runs": len(mine),
        }
    return summary


def claims(rows: list[dict], trend: dict) -> list[dict]:
    """Wang & Liu's trends, each with its numbers and a verdict (reproduces / partly / not reproduced).

    1. Uniformity (−L_uniform) falls as τ grows (plain loss): by the sign of Spearman ρ and its interval.
    2. Tolerance rises as τ grows (plain loss): likewise.
    3. The hard loss stays uniform at large τ: at each τ of :data:`LARGE_TAUS` the hard loss's mean
       −L_uniform exceeds the plain loss's by more than 2 standard errors (over seeds); all three:
       reproduces, some: partly, none: not reproduced (not evaluable with one seed or a missing τ).
    4. The plain loss is most accurate at a middle τ: the best mean accuracy is at a τ of
       :data:`BEST_TAUS`; reproduces when it is also more than 2 standard errors above both ends of the
       τ grid, partly when it is not (not evaluable with one seed); not reproduced at another τ.
    """
    summary = summarize(rows)
    entry = {(m["loss"], m["tau"]): m for m in summary}
    result = []
    plain = trend.get("contrastive")
    if plain:
        for key, name, sign in (("uniformity", "uniformity falls", -1), ("tolerance", "tolerance rises", 1)):
            numbers = plain[key]
            result.append(
                {
                    "claim": f"{name} as τ grows (contrastive)",
                    "rho": numbers["rho"],
                    "low": numbers["low"],
                    "high": numbers["high"],
                    "rho_of_means": numbers["rho_of_means"],
                    "verdict": _sign_verdict(numbers, sign),
                }
            )
    gaps = []
    for tau in LARGE_TAUS:
        hard, base = entry.get(("hard_contrastive", tau)), entry.get(("contrastive", tau))
        if hard and base:
            difference, error = difference_with_error(hard, base, "neg_uniformity")
            if difference is not None:
                gaps.append({"tau": tau, "difference": difference, "standard_error": error})
    if gaps:
        separated = sum(g["standard_error"] is not None and g["difference"] > 2 * g["standard_error"] for g in gaps)
        verdict = (
            Verdict.REPRODUCES
            if separated == len(LARGE_TAUS)
            else Verdict.PARTLY
            if separated
            else Verdict.NOT_REPRODUCED
        )
        if len(gaps) < len(LARGE_TAUS) or any(g["standard_error"] is None for g in gaps):
            verdict = Verdict.NOT_EVALUABLE  # a missing τ, or one seed: no standard error to compare with
        result.append({"claim": "hard contrastive stays more uniform at large τ", "gaps": gaps, "verdict": verdict})
    plain_entries = sorted((m for m in summary if m["loss"] == "contrastive"), key=lambda m: m["tau"])
    if len(plain_entries) >= 3 and all(m["accuracy"] is not None for m in plain_entries):
        best = max(plain_entries, key=lambda m: m["accuracy"])
        margins = [difference_with_error(best, end, "accuracy") for end in (plain_entries[0], plain_entries[-1])]
        in_range = any(math.isclose(best["tau"], tau) for tau in BEST_TAUS)
        clear = all(d is not None and e is not None and d > 2 * e for d, e in margins)
        verdict = (Verdict.REPRODUCES if clear else Verdict.PARTLY) if in_range else Verdict.NOT_REPRODUCED
        if in_range and any(e is None for _, e in margins):
            verdict = Verdict.NOT_EVALUABLE  # one seed: no standard error to decide between reproduces and partly
        result.append(
            {
                "claim": "plain contrastive is most accurate at τ ≈ 0.2–0.3",
                "best_tau": best["tau"],
                "best_accuracy": best["accuracy"],
                "margins": [{"difference": d, "standard_error": e} for d, e in margins],
                "verdict": verdict,
            }
        )
    return result
