"""The HTML of the report: its document frame, the results table and the sweep, trajectory and run sections."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .._numerics import is_finite_number
from ..analysis.format import RESULT_COLUMNS
from ..metric_registry import METRICS
from ..plots import (
    plot_sweep_scatter,
    plot_temperature_curves,
    plot_training_curves,
    plot_trajectory,
    png_bytes,
    sweep_correlations,
    trajectory_points,
)
from ..train.run_log import read_metrics
from ._folders import RunFolder, SweepFolder

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Accuracy columns tried, in order, for the sweep scatter's colour.
_SWEEP_ACCURACY_KEYS = ("linear_acc", "knn_acc", "mean_classifier_acc", "accuracy")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Scripts and network requests are refused by the browser itself; images may only be data: URIs.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'none'"
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2.5rem; }
.meta, .path, .note { color: #666; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
/* A table wider than the page (many metrics or long run names) scrolls inside itself, not the page. */
table { display: block; max-width: 100%; overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
td.best { background: #e3f4e1; font-weight: bold; }
.problems { background: #fff4e5; border-left: 4px solid #f0a020; padding: 0.4rem 0.8rem; margin: 0.6rem 0; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.85rem; }
pre { background: #f7f7f7; padding: 0.6rem; overflow-x: auto; font-size: 0.8rem; }
details summary { cursor: pointer; color: #335; }
"""


# --------------------------------------------------------------------------- formatting


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _number(value: object) -> float | None:
    return float(value) if is_finite_number(value) else None


def _is_accuracy(key: str) -> bool:
    return "acc" in key.lower()


# The registry's ranked metrics; the report highlights their best value (and that of their held-out val_* logs).
_RANKED = {spec.name: "max" if spec.direction == "higher" else "min" for spec in METRICS if spec.ranked}


def _better(key: str) -> str | None:
    """'max' or 'min' when the column has a best value; None when it has no direction."""
    name = key.lower()
    if _is_accuracy(name):
        return "max"
    ranked = next((metric for metric in _RANKED if name == metric or name.startswith(f"val_{metric}")), None)
    return None if ranked is None else _RANKED[ranked]


def _format_value(key: str, value: object) -> str:
    number = _number(value)
    if number is None:
        return "—" if value is None else str(value)
    if _is_accuracy(key):
        return f"{100 * number:.2f} %"  # results.json stores accuracies as fractions
    if isinstance(value, int):
        return str(value)
    return f"{number:.4f}" if abs(number) < 1000 else f"{number:,.1f}"


def _image(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{_e(alt)}">'


def _figure_html(data: bytes, caption: str) -> str:
    return f"<figure>{_image(data, caption)}<figcaption>{_e(caption)}</figcaption></figure>"


def _rendered_figure(make: Callable[[], Figure], caption: str, problems: list[str]) -> str:
    # A bad file in one run must not cost the whole report: record the reason and go on.
    try:
        figure = make()
        return _figure_html(png_bytes(figure), caption)
    except Exception as error:  # noqa: BLE001 - any plotting failure becomes a note in the report
        problems.append(f"could not draw {caption}: {type(error).__name__}: {error}")
        return ""


def _problems_html(problems: list[str]) -> str:
    if not problems:
        return ""
    items = "".join(f"<li>{_e(problem)}</li>" for problem in problems)
    return f'<div class="problems"><ul>{items}</ul></div>'


# --------------------------------------------------------------------------- sections


def document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def header(title: str, run_count: int, sweep_count: int) -> str:
    from .. import __version__

    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    counts = f"{run_count} run{'s' if run_count != 1 else ''}"
    if sweep_count:
        counts += f", {sweep_count} sweep{'s' if sweep_count != 1 else ''}"
    return (
        f"<header><h1>{_e(title)}</h1>"
        f'<p class="meta">Generated {_e(generated)} by aligniform {_e(__version__)} · {_e(counts)}</p></header>'
    )


def _result_columns(runs: list[RunFolder]) -> list[str]:
    # The paper's metrics lead, in the terminal table's order; other numeric keys of results.json follow.
    columns = [column.key for column in RESULT_COLUMNS]
    for run in runs:
        for key, value in (run.results or {}).items():
            if key not in columns and _number(value) is not None:
                columns.append(key)
    return columns


def _best_values(runs: list[RunFolder], columns: list[str]) -> dict[str, float]:
    best = {}
    for column in columns:
        direction = _better(column)
        numbers = [_number((run.results or {}).get(column)) for run in runs]
        values = [value for value in numbers if value is not None]
        # A single run, or a column where all runs tie, has no best value to point at.
        if direction and len(values) > 1 and max(values) > min(values):
            best[column] = max(values) if direction == "max" else min(values)
    return best


def results_section(runs: list[RunFolder]) -> str:
    if not runs:
        return '<section id="results"><h2>Results</h2><p class="note">No run folders.</p></section>'
    columns = _result_columns(runs)
    best = _best_values(runs, columns)
    header = "".join(f"<th>{_e(column)}</th>" for column in ["run", *columns])
    rows = []
    for run in runs:
        cells = [f'<td><a href="#{run.anchor}">{_e(run.name)}</a></td>']
        for column in columns:
            value = (run.results or {}).get(column)
            is_best = column in best and _number(value) == best[column]
            css = "number best" if is_best else "number"
            text = _e(_format_value(column, value))
            cells.append(f'<td class="{css}">{f"<strong>{text}</strong>" if is_best else text}</td>')
        rows.append(f'<tr class="run-row">{"".join(cells)}</tr>')
    note = (
        "Accuracies in %. Highlighted: the best value of each column (highest accuracy, lowest alignment and "
        "uniformity; tolerance has no best value, since higher tolerance trades against uniformity)."
    )
    return (
        '<section id="results"><h2>Results</h2>'
        f'<table class="results"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        f'<p class="note">{_e(note)}</p></section>'
    )


def sweep_section(sweep: SweepFolder) -> str:
    problems = list(sweep.problems)
    parts = [f'<section class="sweep" id="{sweep.anchor}"><h2>Sweep: {_e(sweep.name)}</h2>']
    parts.append(f'<p class="path">{_e(sweep.path)}</p>')
    figures = []
    accuracy_key = next((key for key in _SWEEP_ACCURACY_KEYS if key in sweep.columns), None)
    if sweep.rows and accuracy_key:
        caption = f"Alignment vs uniformity, coloured by {accuracy_key} (Wang & Isola 2020)"
        figures.append(_rendered_figure(lambda: plot_sweep_scatter(sweep.rows, accuracy_key), caption, problems))
        correlations = sweep_correlations(sweep.rows, accuracy_key)
        parts.append(_correlation_table(accuracy_key, correlations))
        if _varies(sweep.rows, "tau"):
            caption = f"{accuracy_key}, uniformity and tolerance against the temperature τ (Wang & Liu 2021)"
            rows = _temperature_rows(sweep.rows)
            figures.append(
                _rendered_figure(lambda: plot_temperature_curves(rows, accuracy_key=accuracy_key), caption, problems)
            )
    elif sweep.rows:
        problems.append(f"sweep.csv has none of the accuracy columns {', '.join(_SWEEP_ACCURACY_KEYS)}: no scatter")
    figures += [_existing_png(path, problems) for path in sorted(sweep.path.glob("*.png"))]
    parts.append(_problems_html(problems))
    parts += figures
    if sweep.rows:
        parts.append(_sweep_table(sweep))
    parts.append("</section>")
    return "\n".join(parts)


def _varies(rows: list[dict], key: str) -> bool:
    values = set()
    for row in rows:
        try:
            values.add(float(row.get(key) or "nan"))
        except ValueError:
            continue
    return len({value for value in values if is_finite_number(value)}) > 1


def _temperature_rows(rows: list[dict]) -> list[dict]:
    # sweep.csv's "loss" column names the objective when it is text; when it is
    # numeric (a final loss value) it cannot label curves, so all rows share one.
    def series(row: dict) -> str:
        loss = (row.get("loss") or "").strip()
        try:
            float(loss)
        except ValueError:
            return loss or "all runs"
        return "all runs"

    return [{**row, "loss": series(row)} for row in rows]


def _correlation_table(accuracy_key: str, correlations: dict) -> str:
    def rho(value: float) -> str:
        return "n/a" if math.isnan(value) else f"{value:.3f}"

    return (
        '<table class="correlations"><thead><tr><th>Spearman correlation</th><th>ρ</th></tr></thead><tbody>'
        f'<tr><td>{_e(accuracy_key)} vs alignment</td><td class="number">{rho(correlations["alignment"])}</td></tr>'
        f'<tr><td>{_e(accuracy_key)} vs uniformity</td><td class="number">{rho(correlations["uniformity"])}</td></tr>'
        f'<tr><td>runs with all values</td><td class="number">{correlations["n"]}</td></tr></tbody></table>'
    )


def _sweep_table(sweep: SweepFolder) -> str:
    header = "".join(f"<th>{_e(column)}</th>" for column in sweep.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(row.get(column) or '')}</td>" for column in sweep.columns) + "</tr>"
        for row in sweep.rows
    )
    return (
        f"<details><summary>sweep.csv ({len(sweep.rows)} rows)</summary>"
        f'<table class="sweep-table"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></details>'
    )


def run_section(run: RunFolder) -> str:
    problems = list(run.problems)
    parts = [f'<section class="run" id="{run.anchor}"><h2>Run: {_e(run.name)}</h2>']
    parts.append(f'<p class="path">{_e(run.path)}</p>')
    body = []
    if run.config_text is not None:
        body.append("<h3>Configuration</h3>" + _config_html(run.config_text))
    if (run.path / "metrics.jsonl").is_file():
        curves = _rendered_figure(
            lambda: plot_training_curves(read_metrics(run.path / "metrics.jsonl")), "training curves", problems
        )
        if curves:
            body.append("<h3>Training curves</h3>" + curves)
            records = _trajectory_records(run)
            if records is not None:
                caption = "alignment–uniformity trajectory"
                trajectory = _rendered_figure(lambda: plot_trajectory(records), caption, problems)
                if trajectory:
                    body.append("<h3>Alignment–uniformity trajectory</h3>" + trajectory)
    pngs = sorted(run.path.glob("*.png"))
    if pngs:
        body.append("<h3>Figures in the run folder</h3>" + "".join(_existing_png(path, problems) for path in pngs))
    parts.append(_problems_html(problems))
    parts += body
    parts.append("</section>")
    return "\n".join(parts)


def _trajectory_records(run: RunFolder) -> list[dict] | None:
    """The run's metrics.jsonl records when they hold held-out alignment and uniformity, else None."""
    try:
        records = read_metrics(run.path / "metrics.jsonl")
    except (OSError, ValueError):  # the training-curves figure already reports an unreadable file
        return None
    return records if trajectory_points(records) is not None else None


def trajectories_section(runs: list[RunFolder]) -> str:
    # One overlay of every run's path (Gao et al. 2021, Figure 2), only when there are paths to compare.
    found = {run.name: _trajectory_records(run) for run in runs if (run.path / "metrics.jsonl").is_file()}
    records = {name: run_records for name, run_records in found.items() if run_records is not None}
    if len(records) < 2:
        return ""
    problems: list[str] = []
    caption = f"alignment–uniformity trajectories of {len(records)} runs (Gao et al. 2021, Figure 2)"
    figure = _rendered_figure(lambda: plot_trajectory(records), caption, problems)
    return (
        '<section id="trajectories"><h2>Alignment–uniformity trajectories</h2>'
        f"{_problems_html(problems)}{figure}</section>"
    )


def _existing_png(path: Path, problems: list[str]) -> str:
    try:
        data = path.read_bytes()
    except OSError as error:
        problems.append(f"could not read {path.name}: {error}")
        return ""
    if not data.startswith(PNG_MAGIC):
        problems.append(f"{path.name} is not a PNG file")
        return ""
    return _figure_html(data, path.name)


def _config_html(text: str) -> str:
    raw = f"<details><summary>config.yaml</summary><pre>{_e(text)}</pre></details>"
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        return f'<p class="note">config.yaml is not valid YAML ({_e(error)}); shown as text.</p><pre>{_e(text)}</pre>'
    if not isinstance(config, dict):
        return f"<pre>{_e(text)}</pre>"
    rows = "".join(f"<tr><td>{_e(key)}</td><td>{_e(_config_value(value))}</td></tr>" for key, value in _flatten(config))
    header = "<thead><tr><th>option</th><th>value</th></tr></thead>"
    return f'<table class="config">{header}<tbody>{rows}</tbody></table>{raw}'


def _flatten(config: dict, prefix: str = "") -> list[tuple[str, object]]:
    items = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            items += _flatten(value, f"{name}.")
        else:
            items.append((name, value))
    return items


def _config_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)
