"""Wang & Liu's (2021) temperature study: accuracy, uniformity and tolerance against τ.

For each loss (plain contrastive, and the hard contrastive loss that keeps only
each anchor's upper-α quantile of negatives) and each temperature τ, an encoder
is trained with :func:`aligniform.train.run` and evaluated: linear-probe and
5-NN accuracy, uniformity reported as −L_uniform(t = 2) (Wang & Liu's
convention: higher is more uniform) and tolerance (mean similarity of
same-class test pairs, :func:`aligniform.metrics.tolerance`).

Claims checked (Wang & Liu 2021): as τ grows, uniformity falls and tolerance
rises (the uniformity–tolerance dilemma); the hard contrastive loss keeps
uniformity high at large τ. The table is laid out like their Table 1 (τ as
columns), with their published CIFAR-10 numbers beside ours.

Runs live in ``<out>/temperature_runs/<loss>_tau<τ>``; a run whose
``results.json`` exists with the same configuration is reused, and one with
only a ``checkpoint.pt`` is resumed, so an interrupted study picks up where it
stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..stats import spearman
from .common import Progress, build_options, cell, markdown_table, options_dict, torch_threads, write_outputs

STUDY = "temperature"
LOSSES = ("contrastive", "hard_contrastive")
# −L_uniform below this means the features have barely left the (nearly collapsed)
# initialisation: the run is under-trained at this budget, not a finding about τ.
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
    """Options of the temperature study; the defaults (12 runs on ``digits``) take a few minutes on 2 CPU cores.

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
        seed: training seed of every run.
        device: ``auto``, ``cpu`` or ``cuda``.
        threads: torch intra-op threads while the study runs (0: leave torch's
            setting). 1 is fastest on small shared CPUs; on a free many-core
            machine or a GPU pass 0.
        progress: progress lines and per-run progress bars.
    """

    taus: tuple[float, ...] = (0.07, 0.2, 0.3, 0.5, 0.7, 1.0)
    losses: tuple[str, ...] = LOSSES
    hard_alpha: float = 0.25
    dataset: str = "digits"
    model: str = "convnet"
    epochs: int = 20
    batch_size: int = 256
    lr: float = 0.12
    dim: int = 128
    linear_probe: str = "short"
    seed: int = 0
    device: str = "auto"
    threads: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        self.taus = tuple(float(t) for t in self.taus)
        self.losses = tuple(self.losses)
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


def run_config(loss: str, tau: float, options: TemperatureOptions, runs: Path) -> TrainConfig:
    """The :class:`aligniform.config.TrainConfig` of one (loss, τ) run."""
    return TrainConfig(
        dataset=options.dataset,
        model=options.model,
        objective=objective_spec(loss, tau, options.hard_alpha),
        epochs=options.epochs,
        batch_size=options.batch_size,
        lr=options.lr,
        dim=options.dim,
        linear_probe=options.linear_probe,
        seed=options.seed,
        device=options.device,
        out=str(runs / f"{loss}_tau{tau:g}"),
        progress=options.progress,
    )


def train_or_reuse(config: TrainConfig, progress: Progress) -> tuple[dict, str]:
    """Results of one run: read from a finished run, resumed from its checkpoint, or trained from scratch."""
    from ..train import run
    from ..train.reuse import finished_results, matches

    run_dir = Path(config.out)
    finished = finished_results(run_dir, config)
    if finished is not None:
        progress(f"{run_dir.name}: reusing finished run")
        return finished, "reused"
    same = matches(run_dir, config)
    if same and (run_dir / "checkpoint.pt").is_file():
        progress(f"{run_dir.name}: resuming from its checkpoint")
        return run(config, resume=True), "resumed"
    if run_dir.is_dir() and not same and (run_dir / "config.yaml").is_file():
        progress(f"{run_dir.name}: options changed since the saved run; training again")
    progress(f"{run_dir.name}: training {config.objective} for {config.epochs} epochs on {config.dataset}")
    return run(config, overwrite=True), "trained"


def result_row(loss: str, tau: float, results: dict, status: str, run_dir: Path, alpha: float | None) -> dict:
    """One row of the study: the run's evaluation plus −L_uniform (Wang & Liu's uniformity)."""
    linear, knn = results.get("linear_acc"), results.get("knn_acc")
    return {
        "loss": loss,
        "tau": tau,
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


def trends(rows: list[dict]) -> dict:
    """Per loss: Spearman ρ of τ with −L_uniform (Wang & Liu: negative) and with tolerance (positive).

    Runs near collapse (see :data:`NEAR_COLLAPSE`) are left out: they measure
    the training budget, not the temperature.
    """
    summary = {}
    for loss in dict.fromkeys(r["loss"] for r in rows):
        mine = [r for r in rows if r["loss"] == loss and r["tolerance"] is not None and not r["near_collapse"]]
        taus = [r["tau"] for r in mine]
        best = max(mine, key=lambda r: r["accuracy"] if r["accuracy"] is not None else -1, default=None)
        summary[loss] = {
            "spearman_tau_uniformity": spearman(taus, [r["neg_uniformity"] for r in mine]),
            "spearman_tau_tolerance": spearman(taus, [r["tolerance"] for r in mine]),
            "best_tau": best["tau"] if best else None,
            "runs": len(mine),
        }
    return summary


def _tau(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def _percent(value: float | None) -> str:
    return cell(None if value is None else 100 * value, 2)


def _by_tau(rows: dict[float, dict], taus: list[float], key: str) -> list:
    """``key`` of the run at each τ (None where τ was not run)."""
    return [rows[t][key] if t in rows else None for t in taus]


def _published_row(loss: str, taus: list[float], index: int, digits: int) -> list[str]:
    published = PUBLISHED.get(loss, {})
    cells = []
    for tau in taus:
        value = published.get(round(tau, 2), (None, None, None))[index]
        cells.append(value if isinstance(value, str) else cell(value, digits))
    return cells


def markdown_report(results: dict) -> str:
    """One table per loss in the layout of Wang & Liu's Table 1 (τ as columns), published values beside ours."""
    options = results["options"]
    accuracy_note = "linear probe" if options["linear_probe"] != "none" else "5-NN (no linear probe was run)"
    lines = [
        "# Temperature (Wang & Liu 2021): accuracy, uniformity and tolerance against τ",
        "",
        f"Ours: {options['model']} on {options['dataset']}, {options['epochs']} epochs, batch {options['batch_size']}, "
        f"dim {options['dim']}, seed {options['seed']}; hard contrastive keeps the upper α = {options['hard_alpha']:g} "
        "quantile of each anchor's negatives. Uniformity is −L_uniform(t = 2) on the test set (higher is more "
        "uniform); tolerance is the mean similarity of same-class test pairs. "
        "W&L: Wang & Liu (2021), ResNet-18 on CIFAR-10, memory bank 16384, 200 epochs (accuracy: linear probe). "
        "Different data and budget: compare the trends across τ, not the values.",
    ]
    taus = options["taus"]
    header = ["", *[f"τ = {t:g}" for t in taus]]
    for loss in options["losses"]:
        rows = {r["tau"]: r for r in results["rows"] if r["loss"] == loss}
        table = [
            ["ours: linear accuracy (%)", *map(_percent, _by_tau(rows, taus, "linear_acc"))],
            ["ours: 5-NN accuracy (%)", *map(_percent, _by_tau(rows, taus, "knn_acc"))],
            ["ours: uniformity −L_uniform", *[cell(v, 3) for v in _by_tau(rows, taus, "neg_uniformity")]],
            ["ours: tolerance", *[cell(v, 3) for v in _by_tau(rows, taus, "tolerance")]],
            ["W&L: accuracy (%)", *_published_row(loss, taus, 0, 2)],
            ["W&L: uniformity", *_published_row(loss, taus, 1, 2)],
            ["W&L: tolerance", *_published_row(loss, taus, 2, 3)],
        ]
        trend = results["trends"].get(loss, {})
        lines += [
            "",
            f"## {loss.replace('_', ' ')}",
            "",
            markdown_table(header, table),
            "",
            f"Over {trend.get('runs')} runs (near-collapse runs left out): "
            f"Spearman ρ(τ, uniformity) = {cell(trend.get('spearman_tau_uniformity'), 2)} (W&L: falls with τ), "
            f"ρ(τ, tolerance) = {cell(trend.get('spearman_tau_tolerance'), 2)} (W&L: rises with τ); "
            f"best τ by {accuracy_note}: {_tau(trend.get('best_tau'))}.",
        ]
    collapsed = [f"{r['loss']} τ = {r['tau']:g}" for r in results["rows"] if r["near_collapse"]]
    if collapsed:
        lines += [
            "",
            f"Near collapse (−L_uniform < {NEAR_COLLAPSE:g}), i.e. under-trained at this budget rather than "
            f"a property of τ; raise `epochs`: {', '.join(collapsed)}.",
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
        ``options``, ``rows`` (one per loss and τ), ``trends`` per loss,
        ``counts`` (runs trained / resumed / reused), ``figures`` and ``seconds``.

    Examples:
        >>> results = run_temperature_study(Path("/tmp/temp"), taus=(0.2, 0.5), epochs=1,
        ...                                 linear_probe="none", progress=False)  # doctest: +SKIP
        >>> [row["tau"] for row in results["rows"]]  # doctest: +SKIP
        [0.2, 0.5, 0.2, 0.5]
    """
    options = build_options(TemperatureOptions, options, overrides)
    with torch_threads(options.threads):
        return _run(Path(out), options)


def _run(out: Path, options: TemperatureOptions) -> dict:
    from ..plots import plot_temperature_curves, save_figure

    out.mkdir(parents=True, exist_ok=True)
    runs = out / "temperature_runs"
    progress = Progress(STUDY, options.progress)
    total = len(options.losses) * len(options.taus)
    progress(f"{total} runs: losses {list(options.losses)} × τ {list(options.taus)} on {options.dataset}")
    rows = []
    for loss in options.losses:
        for tau in options.taus:
            config = run_config(loss, tau, options, runs)
            results, status = train_or_reuse(config, progress)
            alpha = options.hard_alpha if loss == "hard_contrastive" else None
            rows.append(result_row(loss, tau, results, status, Path(config.out), alpha))
            row = rows[-1]
            progress(
                f"[{len(rows)}/{total}] {loss} τ={tau:g}: accuracy {cell(row['accuracy'], 3)}, "
                f"−L_uniform {cell(row['neg_uniformity'], 3)}, tolerance {cell(row['tolerance'], 3)} ({status})"
            )
    counts = {status: sum(r["status"] == status for r in rows) for status in ("trained", "resumed", "reused")}
    results = {"options": options_dict(options), "rows": rows, "trends": trends(rows), "counts": counts}
    figures = save_figure(plot_temperature_curves(rows), out / "temperature_curves")
    results["figures"] = [str(path) for path in figures]
    results["seconds"] = progress.seconds
    json_path, markdown_path = write_outputs(out, STUDY, results, markdown_report(results))
    progress(f"done: {json_path}, {markdown_path}")
    return results
