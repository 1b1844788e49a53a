"""Wang & Liu's (2021) temperature study: accuracy, uniformity and tolerance against τ.

For each loss (plain contrastive, and the hard contrastive loss that keeps only
each anchor's upper-α quantile of negatives), each temperature τ and each seed,
an encoder is trained with :func:`aligniform.train.run` and evaluated:
linear-probe and 5-NN accuracy, uniformity reported as −L_uniform(t = 2) (Wang &
Liu's convention: higher is more uniform) and tolerance (mean similarity of
same-class test pairs, :func:`aligniform.metrics.tolerance`).

Claims checked (Wang & Liu 2021), each with a verdict: as τ grows, uniformity
falls and tolerance rises (the uniformity–tolerance dilemma; Spearman ρ over τ
with a bootstrap interval that resamples the seeds of each τ); the hard
contrastive loss stays more uniform than the plain one at large τ; the plain
loss is most accurate at a middle τ. The table is laid out like their Table 1
(τ as columns; with several seeds mean ± sample standard deviation), with
their published CIFAR-10 numbers beside ours.

Runs live in ``<out>/temperature_runs/<loss>_tau<τ>`` (``..._seed<s>`` with
several seeds); a run whose ``results.json`` exists with the same
configuration is reused, and, with ``workers = 1``, one with only a
``checkpoint.pt`` is resumed, so an interrupted study picks up where it
stopped. With ``workers > 1`` the runs train in separate processes
(:func:`aligniform.sweep.train_in_processes`) and an unfinished one starts over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._numerics import is_finite_number
from ..config import TrainConfig
from ..stats import bootstrap_rank_correlation, spearman
from .common import (
    Progress,
    build_options,
    cell,
    difference_with_error,
    markdown_table,
    mean_sd_cell,
    options_dict,
    torch_threads,
    write_outputs,
)
from .common import summarize as summarize_over_seeds
from .runs import status_counts, train_all
from .verdicts import Verdict

STUDY = "temperature"
LOSSES = ("contrastive", "hard_contrastive")
#: −L_uniform below this (a mean Gaussian potential above e⁻¹ between test outputs; an untrained convnet measures
#: 2.35) flags a run as near collapse; such runs are listed in the report and stay in the trends.
NEAR_COLLAPSE = 1.0

#: Wang & Liu (2021), ResNet-18 on CIFAR-10 (memory bank 16384, 200 epochs): τ -> (accuracy %, −L_uniform, tolerance).
PUBLISHED = {
    "contrastive": {
        0.07: (79.75, 3.86, 0.04),
        0.3: (83.27, 3.60, 0.178),
        0.7: (82.69, 3.17, 0.333),
        1.0: (82.21, 2.96, 0.372),
    },
    # Only the accuracies per τ and a uniformity range (≈ 3.87–3.89) are published for the hard loss.
    "hard_contrastive": {
        0.07: (79.2, "3.87–3.89", None),
        0.3: (83.63, "3.87–3.89", None),
        0.7: (84.19, "3.87–3.89", None),
        1.0: (84.19, "3.87–3.89", None),
    },
}


@dataclass
class TemperatureOptions:
    """Options of the temperature study; the defaults (14 runs on ``digits``) take a few minutes on 2 CPU cores.

    Attributes:
        taus: temperatures τ (Wang & Liu's grid).
        losses: any of ``"contrastive"``, ``"hard_contrastive"``.
        hard_alpha: fraction α of negatives the hard loss keeps (the upper-α
            quantile of each anchor's similarities). Default 0.25: with a batch
            of 256 the 64 most similar of 255 negatives. It must stay well
            above the chance that a negative shares the anchor's class (≈ 0.1
            for 10 digit classes), or the kept "hard" negatives would be mostly
            same-class samples; and well below 1, where the hard loss is the
            plain one.
        dataset: ``digits`` (default, ~0.5 s per epoch) or ``mnist5k`` (~4–5 s per epoch). Scale up: ``cifar10``.
        model: encoder (``convnet``; ``resnet18`` for CIFAR-10).
        epochs: epochs per run. Scale up: 200 on CIFAR-10 (as Wang & Liu), 50 on mnist5k.
        batch_size: batch size (in-batch negatives: batch_size − 1 per anchor).
        lr: base learning rate per 256 samples.
        dim: embedding dimension (Wang & Liu: 128).
        linear_probe: ``short``, ``paper`` or ``none`` (then accuracy is 5-NN only).
        schedule: lr schedule of every run (``step`` without milestones is a constant lr).
        warmup_epochs: linear lr warm-up over the first epochs, per step. At a τ-independent lr the
            1/τ-sized gradient of a small τ collapses the representation's rank in the first epoch
            (docs/training.md); the warm-up keeps the lr the same for every τ, as Wang & Liu do, without it.
        seeds: training seeds; each (loss, τ) is trained once per seed.
        workers: runs at a time; above 1 each run trains in its own process with ``cores / workers``
            threads (and ``threads`` does not apply).
        device: ``auto``, ``cpu`` or ``cuda``.
        threads: torch intra-op threads while the study runs (0: leave torch's
            setting). 1 is fastest on small shared CPUs; on a free many-core
            machine or a GPU pass 0.
        progress: progress lines and per-run progress bars.
    """

    taus: tuple[float, ...] = (0.07, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
    losses: tuple[str, ...] = LOSSES
    hard_alpha: float = 0.25
    dataset: str = "digits"
    model: str = "convnet"
    epochs: int = 20
    batch_size: int = 256
    lr: float = 0.12
    dim: int = 128
    linear_probe: str = "short"
    schedule: str = "step"
    warmup_epochs: int = 0
    seeds: tuple[int, ...] = (0,)
    workers: int = 1
    device: str = "auto"
    threads: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        self.taus = tuple(float(t) for t in self.taus)
        self.losses = tuple(self.losses)
        self.seeds = tuple(int(seed) for seed in self.seeds)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be one or more distinct integers, got {self.seeds}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a positive integer, got {self.workers!r}")
        if not self.taus or min(self.taus) <= 0:
            raise ValueError(f"taus must be positive temperatures, got {self.taus}")
        unknown = [loss for loss in self.losses if loss not in LOSSES]
        if not self.losses or unknown:
            raise ValueError(f"losses must be some of {', '.join(LOSSES)}, got {self.losses}")
        if not 0 < self.hard_alpha <= 1:
            raise ValueError(f"hard_alpha must lie in (0, 1], got {self.hard_alpha}")


def objective_spec(loss: str, tau: float, alpha: float) -> str:
    """The :class:`aligniform.Objective` spec of one run.

    Examples:
        >>> objective_spec("hard_contrastive", 0.5, 0.25)
        'hard_contrastive(tau=0.5, alpha=0.25)'
    """
    if loss == "contrastive":
        return f"contrastive(tau={tau:g})"
    return f"hard_contrastive(tau={tau:g}, alpha={alpha:g})"


def run_name(loss: str, tau: float, seed: int, options: TemperatureOptions) -> str:
    """The run's folder name: ``<loss>_tau<τ>``, with ``_seed<s>`` when the study has several seeds.

    Examples:
        >>> run_name("contrastive", 0.07, 2, TemperatureOptions(seeds=(0, 1, 2)))
        'contrastive_tau0.07_seed2'
    """
    return f"{loss}_tau{tau:g}" + (f"_seed{seed}" if len(options.seeds) > 1 else "")


def run_config(loss: str, tau: float, options: TemperatureOptions, runs: Path, seed: int | None = None) -> TrainConfig:
    """The :class:`aligniform.config.TrainConfig` of one (loss, τ, seed) run (default seed: the first)."""
    seed = options.seeds[0] if seed is None else seed
    return TrainConfig(
        dataset=options.dataset,
        model=options.model,
        objective=objective_spec(loss, tau, options.hard_alpha),
        epochs=options.epochs,
        batch_size=options.batch_size,
        lr=options.lr,
        dim=options.dim,
        linear_probe=options.linear_probe,
        schedule=options.schedule,
        warmup_epochs=options.warmup_epochs,
        seed=seed,
        device=options.device,
        out=str(runs / run_name(loss, tau, seed, options)),
        progress=options.progress,
    )


def result_row(
    loss: str, tau: float, results: dict, status: str, run_dir: Path, alpha: float | None, seed: int = 0
) -> dict:
    """One run of the study: the run's evaluation plus −L_uniform (Wang & Liu's uniformity)."""
    linear, knn = results.get("linear_acc"), results.get("knn_acc")
    return {
        "loss": loss,
        "tau": tau,
        "seed": seed,
        "alpha": alpha,
        "linear_acc": linear,
        "knn_acc": knn,
        "accuracy": linear if linear is not None else knn,
        "uniformity": results.get("uniformity"),  # L_uniform(t = 2), ≤ 0; lower is more uniform
        "neg_uniformity": -results["uniformity"] if results.get("uniformity") is not None else None,
        "tolerance": results.get("tolerance"),
        "alignment": results.get("alignment"),
        "mean_classifier_acc": results.get("mean_classifier_acc"),
        "train_seconds": results.get("train_seconds"),
        "near_collapse": results.get("uniformity") is not None and -results["uniformity"] < NEAR_COLLAPSE,
        "status": status,
        "run": str(run_dir),
    }


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


def _tau(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def _published_row(loss: str, taus: list[float], index: int, digits: int) -> list[str]:
    published = PUBLISHED.get(loss, {})
    cells = []
    for tau in taus:
        value = published.get(round(tau, 2), (None, None, None))[index]
        cells.append(value if isinstance(value, str) else cell(value, digits))
    return cells


def _interval(numbers: dict) -> str:
    return f"{cell(numbers['rho'], 2)} [{cell(numbers['low'], 2)}, {cell(numbers['high'], 2)}]"


def claim_summary(claim: dict) -> str:
    """The numbers behind one claim's verdict, in one line."""
    if "rho" in claim:
        return (
            f"Spearman ρ over τ = {_interval(claim)} (95 % interval), ρ of the means {cell(claim['rho_of_means'], 2)}"
        )
    if "gaps" in claim:
        parts = [
            f"τ = {g['tau']:g}: {cell(g['difference'], 3)}"
            + ("" if g["standard_error"] is None else f" (s.e. {cell(g['standard_error'], 3)})")
            for g in claim["gaps"]
        ]
        return "hard − plain −L_uniform: " + ", ".join(parts)
    margins = ", ".join(
        f"{cell(100 * m['difference'], 2)}"
        + ("" if m["standard_error"] is None else f" (s.e. {cell(100 * m['standard_error'], 2)})")
        for m in claim["margins"]
    )
    best = f"best τ = {claim['best_tau']:g} ({cell(100 * claim['best_accuracy'], 2)} %)"
    return f"{best}, points above the τ grid's ends: {margins}"


def markdown_report(results: dict) -> str:
    """One table per loss in the layout of Wang & Liu's Table 1 (τ as columns), published values beside ours."""
    options = results["options"]
    seeds = options["seeds"]
    spread = f"mean ± sample standard deviation over seeds {seeds}" if len(seeds) > 1 else f"seed {seeds[0]}"
    accuracy_note = "linear probe" if options["linear_probe"] != "none" else "5-NN (no linear probe was run)"
    warmup = f", lr warm-up over {options['warmup_epochs']} epochs" if options.get("warmup_epochs") else ""
    lines = [
        "# Temperature (Wang & Liu 2021): accuracy, uniformity and tolerance against τ",
        "",
        f"Ours: {options['model']} on {options['dataset']}, {options['epochs']} epochs, batch {options['batch_size']}, "
        f"dim {options['dim']}, lr {options['lr']:g} ({options.get('schedule', 'step')} schedule{warmup}); {spread}. "
        f"Hard contrastive keeps the upper α = {options['hard_alpha']:g} "
        "quantile of each anchor's negatives. Uniformity is −L_uniform(t = 2) on the test set (higher is more "
        "uniform); tolerance is the mean similarity of same-class test pairs. "
        "W&L: Wang & Liu (2021), ResNet-18 on CIFAR-10, memory bank 16384, 200 epochs (accuracy: linear probe). "
        "Different data and budget: compare the trends across τ, not the values.",
    ]
    taus = options["taus"]
    header = ["", *[f"τ = {t:g}" for t in taus]]
    summary = {(m["loss"], m["tau"]): m for m in results.get("summary") or summarize(results["rows"])}
    for loss in options["losses"]:
        entries = [summary.get((loss, t)) for t in taus]
        table = [
            ["ours: linear accuracy (%)", *[mean_sd_cell(e, "linear_acc", 100, 2) for e in entries]],
            ["ours: 5-NN accuracy (%)", *[mean_sd_cell(e, "knn_acc", 100, 2) for e in entries]],
            ["ours: uniformity −L_uniform", *[mean_sd_cell(e, "neg_uniformity", 1, 3) for e in entries]],
            ["ours: tolerance", *[mean_sd_cell(e, "tolerance", 1, 3) for e in entries]],
            ["W&L: accuracy (%)", *_published_row(loss, taus, 0, 2)],
            ["W&L: uniformity", *_published_row(loss, taus, 1, 2)],
            ["W&L: tolerance", *_published_row(loss, taus, 2, 3)],
        ]
        trend = results["trends"].get(loss, {})
        uniformity, tolerance = trend.get("uniformity"), trend.get("tolerance")
        lines += ["", f"## {loss.replace('_', ' ')}", "", markdown_table(header, table), ""]
        if uniformity and tolerance:
            lines.append(
                f"Over {trend.get('runs')} runs, Spearman ρ over τ with 95 % "
                f"intervals (seeds resampled within each τ): uniformity {_interval(uniformity)} (W&L: falls with τ), "
                f"tolerance {_interval(tolerance)} (W&L: rises with τ); best τ by mean {accuracy_note}: "
                f"{_tau(trend.get('best_tau'))}."
            )
    if results.get("claims"):
        lines += ["", "## Wang & Liu's trends", "", "| claim | numbers | verdict |", "|---|---|---|"]
        lines += [f"| {c['claim']} | {claim_summary(c)} | {c['verdict']} |" for c in results["claims"]]
    collapsed = [f"{r['loss']} τ = {r['tau']:g} seed {r.get('seed', 0)}" for r in results["rows"] if r["near_collapse"]]
    if collapsed:
        lines += [
            "",
            f"Near collapse (−L_uniform < {NEAR_COLLAPSE:g}; counted in the trends above): {', '.join(collapsed)}.",
        ]
    counts = ", ".join(f"{count} {status}" for status, count in results["counts"].items())
    lines += ["", f"Run time: {results['seconds']:.1f} s (runs: {counts})."]
    return "\n".join(lines) + "\n"


def run_temperature_study(out: str | Path, options: TemperatureOptions | None = None, **overrides: Any) -> dict:
    """Run the temperature study; write ``temperature.json``, ``temperature.md`` and ``temperature_curves.{png,svg}``.

    Args:
        out: output folder (created); runs go to ``<out>/temperature_runs``.
        options: a :class:`TemperatureOptions` (default: its defaults).
        **overrides: fields of :class:`TemperatureOptions` to change (``None`` values are ignored).

    Returns:
        ``options``, ``rows`` (one per loss, τ and seed), ``summary`` (per loss and τ, over seeds),
        ``trends`` per loss, ``claims`` (Wang & Liu's trends with verdicts), ``counts`` (runs trained /
        resumed / reused), ``figures`` and ``seconds``.

    Examples:
        >>> results = run_temperature_study(Path("/tmp/temp"), taus=(0.2, 0.5), epochs=1,
        ...                                 linear_probe="none", progress=False)  # doctest: +SKIP
        >>> [row["tau"] for row in results["rows"]]  # doctest: +SKIP
        [0.2, 0.5, 0.2, 0.5]
    """
    options = build_options(TemperatureOptions, options, overrides)
    with torch_threads(options.threads if options.workers == 1 else 0):
        return _run(Path(out), options)


def _run(out: Path, options: TemperatureOptions) -> dict:
    from ..plots import plot_temperature_curves, save_figure

    out.mkdir(parents=True, exist_ok=True)
    runs = out / "temperature_runs"
    progress = Progress(STUDY, options.progress)
    plan = [
        (loss, tau, seed, run_config(loss, tau, options, runs, seed))
        for loss in options.losses
        for tau in options.taus
        for seed in options.seeds
    ]
    progress(
        f"{len(plan)} runs: losses {list(options.losses)} × τ {list(options.taus)} × seeds {list(options.seeds)} "
        f"on {options.dataset}"
    )
    rows = []
    outcomes = train_all([config for *_, config in plan], options.workers, progress)
    for (loss, tau, seed, config), (results, status) in zip(plan, outcomes, strict=True):
        alpha = options.hard_alpha if loss == "hard_contrastive" else None
        rows.append(result_row(loss, tau, results, status, Path(config.out), alpha, seed))
        row = rows[-1]
        progress(
            f"[{len(rows)}/{len(plan)}] {loss} τ={tau:g} seed {seed}: accuracy {cell(row['accuracy'], 3)}, "
            f"−L_uniform {cell(row['neg_uniformity'], 3)}, tolerance {cell(row['tolerance'], 3)} ({status})"
        )
    counts = status_counts(rows)
    trend = trends(rows)
    results = {
        "options": options_dict(options),
        "rows": rows,
        "summary": summarize(rows),
        "trends": trend,
        "claims": claims(rows, trend),
        "counts": counts,
    }
    figures = save_figure(plot_temperature_curves(rows), out / "temperature_curves")
    results["figures"] = [str(path) for path in figures]
    results["seconds"] = progress.seconds
    json_path, markdown_path = write_outputs(out, STUDY, results, markdown_report(results))
    progress(f"done: {json_path}, {markdown_path}")
    return results
