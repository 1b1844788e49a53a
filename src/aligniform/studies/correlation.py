"""The correlation study of Wang & Isola (2020, Fig. 5 / Sec. 4.2), in miniature on mnist5k.

Many encoders trained with different objectives; the paper's claim is that
lower alignment AND lower uniformity both go with higher downstream accuracy.
This study runs (or reads) a sweep and reports Spearman and Kendall rank
correlations of alignment and uniformity with linear and 5-NN accuracy. A
negative correlation supports the claim (lower metric, higher accuracy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..configs import config_path
from ..stats import rank_correlation
from .common import build_options, write_outputs

#: The shipped grid (package data, see :func:`aligniform.configs.config_path`).
DEFAULT_GRID = "sweeps/mnist5k_correlation"


def grid_file(grid: str | None) -> Path:
    """The sweep grid to run: a YAML file, a shipped grid's name (``"sweeps/mnist5k_correlation"``) or the default.

    Examples:
        >>> grid_file(None).name
        'mnist5k_correlation.yaml'
    """
    if grid is None:
        return config_path(DEFAULT_GRID)
    path = Path(grid).expanduser()
    return path if path.is_file() else config_path(grid)


@dataclass
class CorrelationOptions:
    """Options of the correlation study.

    Attributes:
        grid: sweep grid file or shipped grid name (default: the shipped ``sweeps/mnist5k_correlation``,
            24 encoders, ~45 min on 2 cores).
        workers: runs at a time.
        reuse: only read an existing sweep folder's sweep.csv (no training).
    """

    grid: str | None = None
    workers: int = 1
    reuse: bool = False


def rank_correlations(rows: list[dict]) -> dict:
    """Spearman and Kendall correlations of each metric with each accuracy, over finished runs.

    Runs missing a value are left out of that pair; fewer than 3 runs give ``None``.
    """
    table = {}
    for metric in ("alignment", "uniformity"):
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


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def run_correlation_study(out: str | Path, options: CorrelationOptions | None = None, **overrides: Any) -> dict:
    """Run (or read) the sweep in ``out``, then write correlation.json, correlation.md and the scatter figures.

    Examples:
        >>> results = run_correlation_study(Path("runs/corr"), workers=2)  # doctest: +SKIP
        >>> results["correlations"]["uniformity~linear_acc"]["spearman"] < 0  # doctest: +SKIP
        True
    """
    from ..plots import plot_sweep_scatter, save_figure
    from ..sweep import read_sweep, run_sweep

    options = build_options(CorrelationOptions, options, overrides)
    out = Path(out)
    if not options.reuse:
        run_sweep(grid_file(options.grid), out, workers=options.workers)
    rows = read_sweep(out)
    correlations = rank_correlations(rows)
    for accuracy in ("linear_acc", "knn_acc"):
        save_figure(plot_sweep_scatter(rows, accuracy_key=accuracy), out / f"correlation_{accuracy}")
    results = {"runs": len(rows), "correlations": correlations}
    markdown = correlation_markdown(rows, correlations)
    write_outputs(out, "correlation", results, markdown)
    print(markdown)
    return results


def correlation_markdown(rows: list[dict], correlations: dict) -> str:
    """The study's report: the rank correlations, then one row per encoder (best linear accuracy first)."""
    lines = [
        f"# Correlation study ({len(rows)} encoders)",
        "",
        "Rank correlation of each metric with accuracy. The paper's claim: lower alignment and lower",
        "uniformity go with higher accuracy, i.e. NEGATIVE correlations.",
        "",
        "| metric vs accuracy | n | Spearman ρ (p) | Kendall τ (p) |",
        "|---|---|---|---|",
    ]
    for key, value in correlations.items():
        if not _finite(value["spearman"]):
            lines.append(f"| {key} | {value['n']} | — | — |")
        else:
            lines.append(
                f"| {key} | {value['n']} | {value['spearman']:+.3f} ({value['spearman_p']:.2g}) | "
                f"{value['kendall']:+.3f} ({value['kendall_p']:.2g}) |"
            )
    lines += [
        "",
        "| objective | batch | dim | alignment | uniformity | linear % | 5-NN % |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: -r.get("linear_acc", 0) if _finite(r.get("linear_acc")) else 0):
        cells = [
            _fmt(row.get("alignment")),
            _fmt(row.get("uniformity")),
            _fmt(100 * row["linear_acc"] if _finite(row.get("linear_acc")) else None),
            _fmt(100 * row["knn_acc"] if _finite(row.get("knn_acc")) else None),
        ]
        label = row.get("objective", row.get("run"))
        setting = [str(_integer(row.get(key))) for key in ("batch_size", "dim")]
        lines.append(f"| {label} | " + " | ".join(setting + cells) + " |")
    return "\n".join(lines) + "\n"


def _integer(value: object) -> int | str:
    return int(value) if _finite(value) else "default"


def _fmt(value: object) -> str:
    return f"{value:.3f}" if _finite(value) else "—"
