"""The correlation study of Wang & Isola (2020, Fig. 5 / Sec. 4–5), as pre-registered in
``docs/results/correlation_design.md``.

Many encoders trained with different objectives; the paper's claim is that lower alignment AND lower
uniformity both go with higher downstream accuracy, and (its ablation) that alignment alone collapses,
uniformity alone learns no useful invariance, and their weighted sum works while the weight ratio is
moderate. This study runs (or reads) a sweep and computes, for one dataset, exactly the design's analysis:

* the **collapsed** flag (L_uniform(t = 2) > −0.5 on the test set); collapsed encoders stay in and are also
  reported separately, and every statistic is computed again without them;
* **rank correlations** of each metric with each accuracy (Spearman ρ and Kendall τ-b with scipy's p-values)
  with **bootstrap intervals** (10,000 resamples of the encoders, ``numpy.random.default_rng(0)``, percentile
  95 %; :func:`aligniform.stats.bootstrap_rank_correlation`);
* **"both low is best" as a regression**: accuracy (points) = β₀ + β_A·z(alignment) + β_U·z(uniformity) with R²
  and bootstrap intervals of β_A and β_U (:func:`aligniform.stats.standardized_regression`), and the Spearman
  correlation between alignment and uniformity (their trade-off);
* the **decision rules**: a metric *reproduces* when the interval of ρ lies below 0, is *contradicted* when it
  lies above 0, else *not shown*; the regression *reproduces* when both β intervals lie below 0, *partly* when
  one does. Only the primary accuracy (output 5-NN) over all encoders decides;
* the **ablation predictions** (design section 4), each *holds* / *fails* (or *not evaluable* when a
  pre-stated encoder did not finish or a needed number is missing) with its numbers;
* the **seed-spread precondition** (section 6): the across-encoder standard deviation of the primary accuracy
  against 3× the seed standard deviation read from the seed sweep (option ``seeds``);
* the **figures**: Wang & Isola's Figure 5 layout per accuracy (collapsed encoders ringed) and accuracy
  against each metric with the bootstrap interval of ρ in the title.

Accuracies: the run's output-layer ``knn_acc`` (primary), ``linear_acc``, ``mean_classifier_acc``, and the
backbone's ``backbone_linear_acc`` / ``backbone_knn_acc`` read from ``eval_backbone.json`` in each run folder
when ``aligniform eval --layer backbone`` has written one (design section 8, step 3).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from .._validation import check_positive_int
from ..configs import config_path
from ..stats import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    bootstrap_rank_correlation,
    rank_correlation,
    standardized_regression,
)
from .common import build_options, cell, markdown_table, options_dict, write_outputs
from .common import is_finite_number as _finite

#: The shipped grid (package data, see :func:`aligniform.configs.config_path`).
DEFAULT_GRID = "sweeps/mnist5k_correlation"
#: Where the pre-registered design lives (quoted in the outputs).
DESIGN = "docs/results/correlation_design.md"

#: The metrics of the claim (lower is better for both).
METRICS = ("alignment", "uniformity")
#: The accuracies, primary first, with their names in the report.
ACCURACIES = {
    "knn_acc": "output 5-NN",
    "linear_acc": "output linear",
    "mean_classifier_acc": "output mean classifier",
    "backbone_linear_acc": "backbone linear",
    "backbone_knn_acc": "backbone 5-NN",
}
#: The accuracy that decides the verdicts (design section 2).
PRIMARY_ACCURACY = "knn_acc"
#: An encoder is collapsed when its L_uniform(t = 2) on the test set exceeds this (design section 2).
COLLAPSE_THRESHOLD = -0.5
#: The secondary evaluation of each run's backbone (``aligniform eval CHECKPOINT --layer backbone``).
BACKBONE_FILE = "eval_backbone.json"
#: The backbone accuracies read from it: results.json key -> sweep row key.
BACKBONE_ACCURACIES = {"linear_acc": "backbone_linear_acc", "knn_acc": "backbone_knn_acc"}

#: Weight ratios w = align weight / uniform weight of α = 2, t = 2 encoders that should work (design section 4).
MODERATE_RATIOS = (0.25, 0.5, 0.98 / 0.96, 1.0, 2.0, 4.0)
#: Weight ratios that should collapse or fall further below the best moderate encoder.
LARGE_RATIOS = (8.0, 16.0)
#: Settings that define "the same set-up" as the grid's base (the most common value of each column).
SETTING_KEYS = ("batch_size", "dim", "epochs", "lr")
#: The seed-spread precondition: across-encoder sd ≥ this many seed sds (design section 6).
PRECONDITION_RATIO = 3.0

HOLDS, FAILS, NOT_EVALUABLE = "holds", "fails", "not evaluable"
REPRODUCES, CONTRADICTED, NOT_SHOWN, PARTLY = "reproduces", "contradicted", "not shown", "partly"


def grid_file(grid: str | None) -> Path:
    """The sweep grid to run: a YAML file, a shipped grid's name (``"sweeps/figure5_mnist5k"``) or the default.

    Examples:
        >>> grid_file(None).name
        'mnist5k_correlation.yaml'
        >>> grid_file("sweeps/figure5_digits").name
        'figure5_digits.yaml'
    """
    if grid is None:
        return config_path(DEFAULT_GRID)
    path = Path(grid).expanduser()
    return path if path.is_file() else config_path(grid)


@dataclass
class CorrelationOptions:
    """Options of the correlation study (the defaults are the pre-registered design's).

    Attributes:
        grid: sweep grid file or shipped grid name: ``sweeps/figure5_mnist5k`` and ``sweeps/figure5_digits``
            are the design's grids (default: the older shipped ``sweeps/mnist5k_correlation``, 24 encoders).
        workers: runs at a time.
        reuse: only read an existing sweep folder's sweep.csv (no training); run again with it after the
            backbone evaluations to add their accuracies.
        seeds: the seed-spread sweep folder (``aligniform sweep`` of ``sweeps/figure5_seeds_<dataset>``) whose
            sweep.csv gives the seed standard deviation s of the ablation's margins and of the precondition;
            without it those parts are "not evaluable".
        resamples: bootstrap resamples (the design: 10,000).
        seed: seed of ``numpy.random.default_rng`` drawing the bootstrap resamples (the design: 0).
        collapse_threshold: L_uniform(t = 2) above which an encoder counts as collapsed (the design: −0.5).
    """

    grid: str | None = None
    workers: int = 1
    reuse: bool = False
    seeds: str | None = None
    resamples: int = BOOTSTRAP_RESAMPLES
    seed: int = BOOTSTRAP_SEED
    collapse_threshold: float = COLLAPSE_THRESHOLD

    def __post_init__(self) -> None:
        check_positive_int(self.workers, "workers")
        check_positive_int(self.resamples, "resamples")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer (numpy's default_rng), got {self.seed!r}")
        if isinstance(self.collapse_threshold, bool) or not _finite(self.collapse_threshold):
            raise ValueError(f"collapse_threshold must be a finite number, got {self.collapse_threshold!r}")


# ----------------------------------------------------------------------------- reading the encoders


def _points(value: object) -> float | None:
    """An accuracy fraction as points (0.953 -> 95.3); None when missing."""
    return 100.0 * float(value) if _finite(value) else None


def _all_finite(values: list) -> list[float] | None:
    """The values as floats when there are some and every one is a finite number, else None."""
    return [float(value) for value in values] if values and all(_finite(value) for value in values) else None


def add_backbone_accuracies(rows: list[dict], out: str | Path) -> int:
    """Add ``backbone_linear_acc`` / ``backbone_knn_acc`` from each run's ``eval_backbone.json``; return how many.

    Runs without the file are left as they are (the backbone evaluation is a secondary step of the design).

    Raises:
        ValueError: a file exists but is not a JSON object (naming the file).
    """
    import json

    found = 0
    for row in rows:
        path = Path(out) / str(row.get("run", "")) / BACKBONE_FILE
        if not path.is_file():
            continue
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read the backbone evaluation {path}: {error}") from None
        if not isinstance(results, dict):
            raise ValueError(f"the backbone evaluation {path} is not a JSON object")
        for source, target in BACKBONE_ACCURACIES.items():
            if _finite(results.get(source)):
                row[target] = float(results[source])
        found += 1
    return found


def flag_collapsed(rows: list[dict], threshold: float = COLLAPSE_THRESHOLD) -> None:
    """Set each row's ``collapsed``: uniformity > ``threshold`` (``None`` when the row has no uniformity).

    Examples:
        >>> rows = [{"uniformity": -3.4}, {"uniformity": -0.06}, {"uniformity": ""}]
        >>> flag_collapsed(rows)
        >>> [row["collapsed"] for row in rows]
        [False, True, None]
    """
    for row in rows:
        value = row.get("uniformity")
        row["collapsed"] = bool(value > threshold) if _finite(value) else None


def read_seed_spread(folder: str | Path) -> dict:
    """The seed standard deviation (``ddof=1``) of every accuracy (in points) and metric of a seed sweep.

    Args:
        folder: the sweep folder of the seed runs (its ``sweep.csv``; ``eval_backbone.json`` files are read too),
            or that ``sweep.csv`` itself.

    Returns:
        ``{"folder", "runs", "values": {key: [...]}, "sd": {key: sd}}``; accuracies in points.

    Raises:
        ValueError: no sweep.csv there, or fewer than 2 runs with the primary accuracy.
    """
    from ..sweep import read_sweep

    folder = Path(folder).expanduser()
    if folder.name == "sweep.csv":
        folder = folder.parent
    if not (folder / "sweep.csv").is_file():
        raise ValueError(f"seeds: {folder} has no sweep.csv; run the seed sweep first (docs/studies.md)")
    rows = read_sweep(folder)
    add_backbone_accuracies(rows, folder)
    values: dict[str, list[float]] = {}
    for key in (*ACCURACIES, *METRICS):
        numbers = [_points(row.get(key)) if key in ACCURACIES else row.get(key) for row in rows]
        values[key] = [number for number in numbers if _finite(number)]
    if len(values[PRIMARY_ACCURACY]) < 2:
        raise ValueError(f"seeds: {folder}/sweep.csv needs at least 2 runs with {PRIMARY_ACCURACY}")
    spread = {key: statistics.stdev(numbers) for key, numbers in values.items() if len(numbers) >= 2}
    return {"folder": str(folder), "runs": len(rows), "values": values, "sd": spread}


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


def objective_terms(text: object) -> list[tuple[str, float, dict]] | None:
    """``[(name, weight, arguments)]`` of an objective string (arguments with defaults), or None if it does not parse.

    Examples:
        >>> [(name, weight, arguments["t"]) for name, weight, arguments in objective_terms("0.5*uniform(t=2)")]
        [('uniform', 0.5, 2.0)]
        >>> objective_terms("not an objective") is None
        True
    """
    from ..objective import Objective

    if not isinstance(text, str):
        return None
    try:
        objective = Objective.parse(text)
    except ValueError:
        return None
    return [
        (str(term.name), float(cast(float, term.weight)), dict(cast(dict, term.values))) for term in objective.terms
    ]


def encoder_role(row: dict) -> tuple[str, float] | None:
    """The row's part in the ablation: ``("align alone", α)``, ``("uniform alone", t)``, ``("ratio", w)``.

    ``ratio`` is an align(α = 2) + uniform(t = 2) sum with w = align weight / uniform weight; anything else
    is None.

    Examples:
        >>> encoder_role({"objective": "4*align(alpha=2) + uniform(t=2)"})
        ('ratio', 4.0)
        >>> encoder_role({"objective": "align(alpha=1)"}), encoder_role({"objective": "contrastive(tau=0.2)"})
        (('align alone', 1.0), None)
    """
    terms = objective_terms(row.get("objective"))
    if not terms:
        return None
    if len(terms) == 1:
        name, _, arguments = terms[0]
        if name == "align":
            return ("align alone", float(arguments["alpha"]))
        if name == "uniform":
            return ("uniform alone", float(arguments["t"]))
        return None
    by_name = {name: (weight, arguments) for name, weight, arguments in terms}
    if len(terms) == 2 and set(by_name) == {"align", "uniform"}:
        (align_weight, align_arguments), (uniform_weight, uniform_arguments) = by_name["align"], by_name["uniform"]
        if float(align_arguments["alpha"]) == 2 and float(uniform_arguments["t"]) == 2:
            return ("ratio", align_weight / uniform_weight)
    return None


def base_settings(rows: list[dict]) -> dict[str, object]:
    """The grid's shared set-up: the most common value of each of :data:`SETTING_KEYS` among the rows.

    Examples:
        >>> base_settings([{"batch_size": 256, "lr": 0.12}, {"batch_size": 256}, {"batch_size": 64}])
        {'batch_size': 256, 'dim': None, 'epochs': None, 'lr': 0.12}
    """
    settings: dict[str, object] = {}
    for key in SETTING_KEYS:
        counts = Counter(row.get(key) for row in rows if row.get(key) not in (None, ""))
        settings[key] = counts.most_common(1)[0][0] if counts else None
    return settings


def _at_base(row: dict, base: dict[str, object]) -> bool:
    return all(row.get(key) in (None, "") if value is None else row.get(key) == value for key, value in base.items())


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


# ----------------------------------------------------------------------------- the study


def unfinished_runs(grid: Path, rows: list[dict]) -> list[dict]:
    """The grid's runs without a row in sweep.csv (failed or never run): name and options."""
    from ..sweep import load_grid

    finished = {row.get("run") for row in rows}
    return [{"run": run.name, "options": run.options} for run in load_grid(grid) if run.name not in finished]


def run_correlation_study(out: str | Path, options: CorrelationOptions | None = None, **overrides: Any) -> dict:
    """Run (or read) the sweep in ``out``, then write correlation.json, correlation.md and the figures.

    The seed sweep (option ``seeds``) is read first, so a wrong folder fails before any training. When some
    runs of the sweep fail, the analysis of the finished ones is still written (the failed runs are listed,
    not replaced) and then :class:`aligniform.sweep.SweepRunsFailed` is raised.

    Examples:
        >>> results = run_correlation_study(Path("runs/figure5/mnist5k"), grid="sweeps/figure5_mnist5k",
        ...                                 seeds="runs/figure5/seeds_mnist5k", workers=2)  # doctest: +SKIP
        >>> results["verdict"]["uniformity"]["verdict"]  # doctest: +SKIP
        'reproduces'
    """
    from ..sweep import SweepRunsFailed, read_sweep, run_sweep

    options = build_options(CorrelationOptions, options, overrides)
    out = Path(out)
    seed_spread = read_seed_spread(options.seeds) if options.seeds else None
    grid = grid_file(options.grid)
    failure: SweepRunsFailed | None = None
    if not options.reuse:
        try:
            run_sweep(grid, out, workers=options.workers)
        except SweepRunsFailed as error:
            failure = error
    if not (out / "sweep.csv").is_file():
        raise ValueError(f"{out} has no sweep.csv; run the study without reuse=true first")
    rows = read_sweep(out)
    backbones = add_backbone_accuracies(rows, out)
    flag_collapsed(rows, options.collapse_threshold)
    # In reuse mode without a grid we do not know which grid made the folder: no list of unfinished runs.
    unfinished = unfinished_runs(grid, rows) if options.grid is not None or not options.reuse else []

    results = analyse(rows, options, seed_spread)
    results.update(
        {
            "grid": str(grid) if options.grid is not None or not options.reuse else None,
            "backbone_evaluations": backbones,
            "failed": failure.failed if failure else [],
            "unfinished": unfinished,
        }
    )
    _save_figures(rows, results, out, options.collapse_threshold)
    markdown = correlation_markdown(rows, results)
    write_outputs(out, "correlation", results, markdown)
    print(markdown)
    if failure is not None:
        raise SweepRunsFailed(
            f"{failure}; the analysis of the {len(rows)} finished runs was written to {out / 'correlation.md'}",
            failure.failed,
        )
    return results


def analyse(rows: list[dict], options: CorrelationOptions, seed_spread: dict | None) -> dict:
    """Every number of the design's sections 3, 4 and 6 for one dataset's encoders (rows with ``collapsed``)."""
    everything = correlation_analysis(rows, options.resamples, options.seed)
    kept = [row for row in rows if row.get("collapsed") is False]
    without = correlation_analysis(kept, options.resamples, options.seed)
    primary = {
        metric: everything["correlations"].get(f"{metric}~{PRIMARY_ACCURACY}", {"verdict": NOT_SHOWN})
        for metric in METRICS
    }
    verdict = {
        metric: {key: primary[metric].get(key) for key in ("verdict", "n", "spearman", "spearman_low", "spearman_high")}
        for metric in METRICS
    }
    regression = everything["regressions"].get(PRIMARY_ACCURACY, {"verdict": NOT_SHOWN})
    verdict["both_low_is_best"] = {
        key: regression.get(key)
        for key in (
            "verdict",
            "n",
            "beta_alignment",
            "beta_alignment_low",
            "beta_alignment_high",
            "beta_uniformity",
            "beta_uniformity_low",
            "beta_uniformity_high",
            "r_squared",
        )
    }
    datasets = Counter(str(row.get("dataset")) for row in rows if row.get("dataset"))
    seed_sd = seed_spread["sd"].get(PRIMARY_ACCURACY) if seed_spread else None
    return {
        "design": DESIGN,
        "options": options_dict(options),
        "dataset": datasets.most_common(1)[0][0] if datasets else None,
        "primary_accuracy": PRIMARY_ACCURACY,
        "confidence": CONFIDENCE,
        "runs": len(rows),
        "collapse_threshold": options.collapse_threshold,
        "collapsed": [row.get("run") for row in rows if row.get("collapsed")],
        "verdict": verdict,
        "correlations": everything["correlations"],
        "regressions": everything["regressions"],
        "tradeoff": everything["tradeoff"],
        "without_collapsed": without,
        "seed_spread": seed_spread,
        "precondition": precondition(rows, seed_spread),
        "ablation": ablation_predictions(rows, seed_sd),
        "encoders": [{key: value for key, value in row.items()} for row in rows],
    }


def _save_figures(rows: list[dict], results: dict, out: Path, threshold: float) -> None:
    """Per accuracy with values: the Figure 5 layout (``correlation_<acc>``) and accuracy vs each metric."""
    from ..plots import plot_metric_scatter, plot_sweep_scatter

    for accuracy in ACCURACIES:
        if not any(all(_finite(row.get(key)) for key in (accuracy, *METRICS)) for row in rows):
            continue
        plot_sweep_scatter(rows, accuracy_key=accuracy, collapsed_key="collapsed", out=out / f"correlation_{accuracy}")
        intervals = {
            metric: (entry["spearman_low"], entry["spearman_high"])
            for metric in METRICS
            if (entry := results["correlations"].get(f"{metric}~{accuracy}"))
        }
        plot_metric_scatter(rows, accuracy, out / f"scatter_{accuracy}", intervals=intervals, collapsed_key="collapsed")


# ----------------------------------------------------------------------------- the report


def _ci(value: object, low: object, high: object, digits: int = 3) -> str:
    if not _finite(value):
        return "—"
    interval = f" [{low:+.{digits}f}, {high:+.{digits}f}]" if _finite(low) and _finite(high) else " [—]"
    return f"{value:+.{digits}f}{interval}"


def _p(value: object) -> str:
    return f" (p = {value:.2g})" if _finite(value) else ""


def _correlation_rows(correlations: dict) -> list[list]:
    table = []
    for key, entry in correlations.items():
        metric, accuracy = key.split("~")
        table.append(
            [
                metric,
                ACCURACIES.get(accuracy, accuracy),
                entry["n"],
                _ci(entry["spearman"], entry["spearman_low"], entry["spearman_high"]) + _p(entry["spearman_p"]),
                _ci(entry["kendall"], entry["kendall_low"], entry["kendall_high"]) + _p(entry["kendall_p"]),
                entry["dropped"],
                entry["verdict"],
            ]
        )
    return table


def _regression_rows(regressions: dict) -> list[list]:
    return [
        [
            ACCURACIES.get(accuracy, accuracy),
            entry["n"],
            _ci(entry["beta_alignment"], entry["beta_alignment_low"], entry["beta_alignment_high"], 2),
            _ci(entry["beta_uniformity"], entry["beta_uniformity_low"], entry["beta_uniformity_high"], 2),
            entry["r_squared"],
            f"{entry['dropped']} + {entry['collinear']}",
            entry["verdict"],
        ]
        for accuracy, entry in regressions.items()
    ]


def _statistics_section(title: str, analysis: dict) -> list[str]:
    tradeoff = analysis["tradeoff"]
    return [
        f"## {title} (n = {analysis['runs']})",
        "",
        "Rank correlation of each metric with each accuracy, 95 % percentile bootstrap intervals. The claim: NEGATIVE "
        "(lower metric, higher accuracy); the verdict follows the interval of Spearman ρ.",
        "",
        markdown_table(
            [
                "metric",
                "accuracy",
                "n",
                "Spearman ρ [95 % CI]",
                "Kendall τ-b [95 % CI]",
                "dropped resamples",
                "verdict",
            ],
            _correlation_rows(analysis["correlations"]),
        ),
        "",
        '"Both low is best": accuracy (points) = β₀ + β_A·z(alignment) + β_U·z(uniformity), least squares, '
        "z with the sample standard deviation.",
        "",
        markdown_table(
            ["accuracy", "n", "β_A [95 % CI]", "β_U [95 % CI]", "R²", "dropped (constant + collinear)", "verdict"],
            _regression_rows(analysis["regressions"]),
        ),
        "",
        f"Trade-off across the encoders: Spearman ρ(alignment, uniformity) = "
        f"{_ci(tradeoff['spearman'], tradeoff['spearman_low'], tradeoff['spearman_high'])}{_p(tradeoff['spearman_p'])}"
        f", n = {tradeoff['n']}.",
        "",
    ]


def _ablation_lines(ablation: dict, threshold: float) -> list[str]:
    first = ablation["alignment_alone_collapses"]
    second = ablation["uniformity_alone_lacks_invariance"]
    third = ablation["moderate_ratios_work"]
    alone = "; ".join(
        f"{name}: —" if row is None else f"{name}: L_uniform {cell(row['uniformity'], 3)}"
        for name, row in first["encoders"].items()
    )
    uniform = second["uniform_alone"] or {}
    second_numbers = (
        f"alignment {cell(uniform.get('alignment'), 3)} vs max {cell(second['max_moderate_alignment'], 3)} of w ∈ "
        f"{{{', '.join(map(ratio_label, second['moderate_ratios']))}}}; accuracy {cell(uniform.get('accuracy'), 2)} "
        f"is {cell(second['accuracy_below_median'], 2)} below their median "
        f"{cell(second['median_moderate_accuracy'], 2)} (3s = {cell(second['three_s'], 2)})"
    )
    third_numbers = "; ".join(
        f"w = {ratio_label(entry['w'])}: {cell(entry['accuracy'], 2)}"
        + (" collapsed" if entry["collapsed"] else "")
        + f" ({cell(entry['below_best'], 2)} below)"
        for entry in third["encoders"]
    )
    third_numbers = f"best {cell(third['best_moderate_accuracy'], 2)}, margin {cell(third['margin'], 2)}; " + (
        third_numbers or "no encoder"
    )
    missing = sorted(set(second["missing_ratios"]) | set(third["missing_ratios"]))
    settings = ", ".join(f"{key} {_setting(value)}" for key, value in ablation["base_settings"].items())
    rho = third["ratio_uniformity_spearman"]
    lines = [
        "## Ablation predictions (design section 4)",
        "",
        f"Encoders at the grid's base settings ({settings}); primary accuracy in points; "
        f"s = {cell(ablation['seed_sd'], 3)} (seed standard deviation; — when not given).",
        "",
        markdown_table(
            ["prediction", "result", "numbers"],
            [
                [f"1. alignment alone collapses (L_uniform > {threshold:g})", first["result"], alone],
                ["2. uniformity alone lacks invariance", second["result"], second_numbers],
                ["3. the weighted sum works at moderate ratios (w ≤ 4)", third["result"], third_numbers],
            ],
        ),
        "",
        f"Spearman ρ of w with uniformity across the α = 2, t = 2 weight ratios: {cell(rho['spearman'], 3)}"
        f"{_p(rho['p'])}, n = {rho['n']} (the paper: positive).",
    ]
    if missing:
        lines.append(f"Pre-stated weight ratios that did not finish: {', '.join(map(ratio_label, missing))}.")
    return lines + [""]


def _setting(value: object) -> str:
    """A setting as written in a grid: 256 (not 256.0000), 0.12; blank when missing."""
    return f"{value:g}" if _finite(value) else "" if value is None else str(value)


def ratio_label(w: float) -> str:
    """The align/uniform weight ratio as the design writes it (0.98/0.96 for the paper's own weights).

    Examples:
        >>> ratio_label(0.98 / 0.96), ratio_label(4.0)
        ('0.98/0.96', '4')
    """
    return "0.98/0.96" if math.isclose(w, 0.98 / 0.96) else f"{w:g}"


def _encoder_table(rows: list[dict]) -> str:
    def points(row: dict, key: str) -> object:
        return _points(row.get(key))

    def order(row: dict) -> float:
        value = _points(row.get(PRIMARY_ACCURACY))
        return -value if value is not None else math.inf

    table = [
        [
            row.get("objective", row.get("run")),
            *(_setting(row.get(key)) for key in SETTING_KEYS),
            cell(row.get("alignment"), 3),
            cell(row.get("uniformity"), 3),
            cell(row.get("tolerance"), 3),
            cell(row.get("effective_rank"), 1),
            *(cell(points(row, key), 2) for key in ACCURACIES),
            cell(row.get("collapsed")),
            cell(row.get("wall_seconds"), 0),
        ]
        for row in sorted(rows, key=order)
    ]
    headers = ["objective", "batch", "dim", "epochs", "lr", "alignment", "uniformity", "tolerance", "eff. rank"]
    headers += [f"{name} %" for name in ACCURACIES.values()] + ["collapsed", "wall s"]
    return markdown_table(headers, table)


def _rho_text(entry: dict) -> str:
    rho = _ci(entry.get("spearman"), entry.get("spearman_low"), entry.get("spearman_high"))
    return f"Spearman ρ = {rho}, n = {entry.get('n') or 0}"


def _beta_text(entry: dict) -> str:
    alignment = _ci(entry.get("beta_alignment"), entry.get("beta_alignment_low"), entry.get("beta_alignment_high"), 2)
    uniformity = _ci(
        entry.get("beta_uniformity"), entry.get("beta_uniformity_low"), entry.get("beta_uniformity_high"), 2
    )
    return f"β_A = {alignment}, β_U = {uniformity}, R² = {cell(entry.get('r_squared'), 3)}"


def correlation_markdown(rows: list[dict], results: dict) -> str:
    """The study's report, section by section as the design's section 7 lists them."""
    verdict = results["verdict"]
    regression = verdict["both_low_is_best"]
    condition = results["precondition"]
    spread = results["seed_spread"]
    lines = [
        f"# Correlation study: {results['dataset'] or 'sweep'} ({results['runs']} encoders)",
        "",
        f"Pre-registered design: {DESIGN}. Primary accuracy: {ACCURACIES[PRIMARY_ACCURACY]} (`{PRIMARY_ACCURACY}`); "
        f"bootstrap: {results['options']['resamples']} resamples, numpy default_rng({results['options']['seed']}).",
        "",
        "## Verdict (primary accuracy, all encoders)",
        "",
        markdown_table(
            ["claim", "verdict", "numbers"],
            [
                [f"lower {metric}, higher accuracy", verdict[metric]["verdict"], _rho_text(verdict[metric])]
                for metric in METRICS
            ]
            + [["both low is best (regression)", regression["verdict"], _beta_text(regression)]],
        ),
        "",
        "## Seed spread and the precondition (design section 6)",
        "",
        (
            f"Seed sweep {spread['folder']} ({spread['runs']} runs); seed standard deviations: "
            + ", ".join(f"{ACCURACIES.get(key, key)} {value:.3f}" for key, value in spread["sd"].items())
            + "."
            if spread
            else "No seed sweep given (option `seeds`): s is unknown."
        ),
        "",
        f"Across-encoder standard deviation of the primary accuracy: {cell(condition['encoder_sd'], 2)} points "
        f"(without collapsed: {cell(condition['encoder_sd_without_collapsed'], 2)}); ratio to s: "
        f"{cell(condition['ratio'], 1)} (without collapsed: {cell(condition['ratio_without_collapsed'], 1)}), "
        f"required ≥ {condition['required_ratio']:g}: precondition **{condition['result']}**.",
        "",
    ]
    lines += _statistics_section("Statistics, all encoders (design section 3)", results)
    lines += _statistics_section("Statistics without the collapsed encoders", results["without_collapsed"])
    collapsed = [row for row in rows if row.get("collapsed")]
    lines += [
        f"## Collapsed encoders (L_uniform > {results['collapse_threshold']:g}): {len(collapsed)}",
        "",
        _encoder_table(collapsed) if collapsed else "None.",
        "",
    ]
    lines += _ablation_lines(results["ablation"], results["collapse_threshold"])
    lines += ["## Encoders (design section 7), best primary accuracy first", "", _encoder_table(rows), ""]
    unfinished, failed = results.get("unfinished", []), results.get("failed", [])
    if unfinished or failed:
        lines += ["## Runs that did not finish (listed, not replaced)", ""]
        lines += [f"* {entry['run']}: {entry['options'].get('objective', entry['options'])}" for entry in unfinished]
        lines += [
            f"* {name}: failed (see its train.log)"
            for name in failed
            if name not in {entry["run"] for entry in unfinished}
        ]
        lines.append("")
    return "\n".join(lines)
