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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from .common import (
    Progress,
    build_options,
    cell,
    options_dict,
    torch_threads,
    write_outputs,
)
from .runs import status_counts, train_all
from .temperature_claims import (
    BEST_TAUS,
    LARGE_TAUS,
    NEAR_COLLAPSE,
    SUMMARY_METRICS,
    claims,
    summarize,
    trends,
)
from .temperature_report import PUBLISHED, claim_summary, markdown_report

# The rules live in temperature_claims and the report in temperature_report; these names stay importable
# from here, where callers found them before the split.
__all__ = [
    "BEST_TAUS",
    "LARGE_TAUS",
    "LOSSES",
    "NEAR_COLLAPSE",
    "PUBLISHED",
    "SUMMARY_METRICS",
    "TemperatureOptions",
    "claim_summary",
    "claims",
    "markdown_report",
    "run_temperature_study",
    "summarize",
    "trends",
]

STUDY = "temperature"
LOSSES = ("contrastive", "hard_contrastive")


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
