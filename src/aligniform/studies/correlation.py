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

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._numerics import is_finite_number as _finite
from .._validation import check_positive_int
from ..stats import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CONFIDENCE,
)
from ..sweep import MAX_RUNS
from .common import build_options, options_dict, write_outputs
from .correlation_data import (
    ACCURACIES,
    COLLAPSE_THRESHOLD,
    DESIGN,
    METRICS,
    MODERATE_RATIOS,
    NOT_SHOWN,
    PRIMARY_ACCURACY,
    add_backbone_accuracies,
    base_settings,
    encoder_role,
    flag_collapsed,
    grid_file,
    objective_role,
    read_seed_spread,
)
from .correlation_report import correlation_markdown, ratio_label
from .correlation_rules import (
    ablation_predictions,
    correlation_analysis,
    interval_verdict,
    precondition,
    rank_correlations,
    regression_verdict,
)

# The study's pieces live in correlation_data, correlation_rules and correlation_report; these names stay
# importable from here, where callers found them before the split.
__all__ = [
    "CorrelationOptions",
    "MODERATE_RATIOS",
    "ablation_predictions",
    "analyse",
    "base_settings",
    "encoder_role",
    "flag_collapsed",
    "grid_file",
    "interval_verdict",
    "objective_role",
    "rank_correlations",
    "ratio_label",
    "regression_verdict",
    "run_correlation_study",
]


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
        max_runs: the most runs the grid may make (:data:`aligniform.sweep.MAX_RUNS`, 10,000); a larger grid
            is refused before it is expanded.
    """

    grid: str | None = None
    workers: int = 1
    reuse: bool = False
    seeds: str | None = None
    resamples: int = BOOTSTRAP_RESAMPLES
    seed: int = BOOTSTRAP_SEED
    collapse_threshold: float = COLLAPSE_THRESHOLD
    max_runs: int = MAX_RUNS

    def __post_init__(self) -> None:
        check_positive_int(self.workers, "workers")
        check_positive_int(self.resamples, "resamples")
        check_positive_int(self.max_runs, "max_runs")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer (numpy's default_rng), got {self.seed!r}")
        if isinstance(self.collapse_threshold, bool) or not _finite(self.collapse_threshold):
            raise ValueError(f"collapse_threshold must be a finite number, got {self.collapse_threshold!r}")


# ----------------------------------------------------------------------------- the study


def unfinished_runs(grid: Path, rows: list[dict], max_runs: int | None = MAX_RUNS) -> list[dict]:
    """The grid's runs without a row in sweep.csv (failed or never run): name and options."""
    from ..sweep import load_grid

    finished = {row.get("run") for row in rows}
    return [{"run": run.name, "options": run.options} for run in load_grid(grid, max_runs) if run.name not in finished]


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
            run_sweep(grid, out, workers=options.workers, max_runs=options.max_runs)
        except SweepRunsFailed as error:
            failure = error
    if not (out / "sweep.csv").is_file():
        raise ValueError(f"{out} has no sweep.csv; run the study without reuse=true first")
    rows = read_sweep(out)
    backbones = add_backbone_accuracies(rows, out)
    flag_collapsed(rows, options.collapse_threshold)
    # In reuse mode without a grid we do not know which grid made the folder: no list of unfinished runs.
    unfinished = unfinished_runs(grid, rows, options.max_runs) if options.grid is not None or not options.reuse else []

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
