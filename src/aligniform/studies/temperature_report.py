"""The temperature study's report: Wang & Liu's Table 1 layout, their published values beside ours."""

from __future__ import annotations

from .common import (
    cell,
    markdown_table,
    mean_sd_cell,
)
from .temperature_claims import NEAR_COLLAPSE, summarize

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
