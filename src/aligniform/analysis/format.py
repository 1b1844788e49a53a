"""Text renderings of analysis results for the terminal."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..metric_registry import METRICS
from .measure import UNIT_NORM_TOLERANCE

__all__ = ["RESULT_COLUMNS", "ResultColumn", "format_analysis", "format_results"]


def format_analysis(result: dict[str, Any]) -> str:
    """The analysis as text: a header, a ``metric  value  note`` table, then how each metric was computed.

    A skipped metric shows ``n/a`` and the reason in its note.

    Examples:
        >>> import numpy as np
        >>> from aligniform.analysis import EmbeddingSet, analyze_embeddings
        >>> z = np.eye(4)
        >>> print(format_analysis(analyze_embeddings(EmbeddingSet(z, z, source="eye"))).splitlines()[0])
        source: eye
    """
    notes = result.get("notes", {})
    rows = [("metric", "value", "note")]
    details = []
    # One row per registered metric, in the registry's order, with its label and reading hint.
    for spec in METRICS:
        key, value, label = spec.name, result.get(spec.name), spec.label.format(**result)
        if value is None:
            rows.append((label, "n/a", notes.get(key, "skipped")))
            continue
        rows.append((label, f"{value:.{spec.digits}f}", spec.hint))
        if notes.get(key):
            details.append(f"  {label}: {notes[key]}")
    rows.extend(_norm_rows(result))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    table = [f"{name:<{widths[0]}}  {value:>{widths[1]}}  {note}".rstrip() for name, value, note in rows]
    table.insert(1, f"{'-' * widths[0]}  {'-' * widths[1]}  ----")
    features = "L2-normalised first (--normalize)" if result.get("normalized") else "used as given (unit norm)"
    header = [f"source: {result.get('source', '?')}", f"n = {result['n']} rows, d = {result['d']}; rows {features}", ""]
    footer = ["", "how:"] + details if details else []
    return "\n".join(header + table + footer)


def _norm_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    given = "x as given, before normalisation" if result.get("normalized") else "x as given"
    return [
        ("row norm min", f"{result['norm_min']:.4f}", f"L2 norms of the rows of {given}"),
        ("row norm mean", f"{result['norm_mean']:.4f}", ""),
        ("row norm max", f"{result['norm_max']:.4f}", ""),
        ("unit-norm rows", f"{100 * result['unit_norm_fraction']:.1f}%", f"|norm - 1| <= {UNIT_NORM_TOLERANCE:g}"),
    ]


class ResultColumn(NamedTuple):
    """One column of the results table: the key in ``results.json``, its title, the factor it is shown with."""

    key: str
    title: str
    scale: float


#: The paper's metrics of a run, in the order every results table shows them (terminal and HTML report).
RESULT_COLUMNS = (
    ResultColumn("linear_acc", "linear %", 100),
    ResultColumn("knn_acc", "5-NN %", 100),
    ResultColumn("mean_classifier_acc", "mean-cls %", 100),
    ResultColumn("alignment", "align ↓", 1),
    ResultColumn("uniformity", "uniform ↓", 1),
    ResultColumn("tolerance", "tolerance", 1),
)


def format_results(rows: dict[str, dict[str, Any]]) -> str:
    """A plain-text table: one row per run, the paper's metrics (:data:`RESULT_COLUMNS`) as columns.

    Accuracies (fractions in ``results.json``) are shown in %; a missing or
    non-numeric value shows as a dash.

    Examples:
        >>> table = format_results({"run": {"linear_acc": 0.9, "alignment": 0.5}}).splitlines()
        >>> table[0].split()
        ['linear', '%', '5-NN', '%', 'mean-cls', '%', 'align', '↓', 'uniform', '↓', 'tolerance']
        >>> table[2].split()
        ['run', '90.00', '—', '—', '0.50', '—', '—']
    """
    names = list(rows)
    width = max(12, *(len(name) for name in names))
    header = f"{'':{width}}" + "".join(f"{column.title:>12}" for column in RESULT_COLUMNS)
    lines = [header, "-" * len(header)]
    for name in names:
        cells = []
        for column in RESULT_COLUMNS:
            value = rows[name].get(column.key)
            cells.append(f"{value * column.scale:>12.2f}" if isinstance(value, (int, float)) else f"{'—':>12}")
        lines.append(f"{name:{width}}" + "".join(cells))
    return "\n".join(lines)
