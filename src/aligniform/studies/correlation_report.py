"""The correlation study's markdown report (design section 7)."""

from __future__ import annotations

import math

from .._numerics import is_finite_number as _finite
from .common import cell, markdown_table
from .correlation_data import ACCURACIES, DESIGN, METRICS, PRIMARY_ACCURACY, SETTING_KEYS, _points

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
