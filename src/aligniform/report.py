"""One self-contained HTML report for training runs and sweeps.

A *run folder* holds ``config.yaml`` (the resolved training config),
``metrics.jsonl`` (one JSON object per epoch), ``results.json`` (final metrics:
``linear_acc``, ``knn_acc``, ``mean_classifier_acc`` as fractions,
``alignment``, ``uniformity``, ``tolerance``) and optionally ``*.png`` figures.
A *sweep folder* holds ``sweep.csv`` (one row per run) and one run folder per run.

The report is a single HTML file: figures are embedded as base64 PNG ``data:``
URIs, CSS is inline, and a Content-Security-Policy forbids scripts and every
network request, so it can be mailed or archived and opens offline.

Examples:
    >>> from aligniform.report import write_report
    >>> write_report(["runs/alexnet", "runs/resnet"], "report.html")  # doctest: +SKIP
    PosixPath('report.html')

From the shell: ``aligniform report runs/sweep1 -o report.html``.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ._validation import check_output_path
from .analysis.format import RESULT_COLUMNS
from .plots import (
    plot_sweep_scatter,
    plot_temperature_curves,
    plot_training_curves,
    plot_trajectory,
    png_bytes,
    sweep_correlations,
    trajectory_points,
)
from .train.run_log import read_metrics

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Files a run folder is expected to hold (any one of them makes a folder a run folder).
RUN_FILES = ("config.yaml", "metrics.jsonl", "results.json")
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


@dataclass
class RunFolder:
    """What the report shows for one run folder."""

    path: Path
    name: str
    anchor: str = ""
    config_text: str | None = None
    results: dict | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class SweepFolder:
    """What the report shows for one sweep folder."""

    path: Path
    name: str
    anchor: str = ""
    rows: list[dict] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    runs: list[RunFolder] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def write_report(
    run_dirs: Sequence[str | Path] | str | Path, out: str | Path, title: str = "aligniform report"
) -> Path:
    """Write one self-contained HTML report for run folders and/or sweep folders.

    The report has the title and generation time; a results table (one row
    per run, accuracies in %, the best value of each column highlighted:
    highest accuracy, lowest alignment and uniformity; tolerance has no "best",
    Wang & Liu's uniformity–tolerance dilemma); for each sweep the
    alignment–uniformity scatter (:func:`aligniform.plots.plot_sweep_scatter`),
    temperature curves when ``tau`` varies, and the ``sweep.csv`` table; for each
    run its config, its training curves
    (:func:`aligniform.plots.plot_training_curves`), its alignment–uniformity
    trajectory (:func:`aligniform.plots.plot_trajectory`, when ``metrics.jsonl``
    holds held-out alignment and uniformity) and the PNGs already in its folder;
    when several runs have trajectories, one figure overlays them all. Missing or
    unreadable files are listed in the report, not raised.

    Args:
        run_dirs: run folders and/or sweep folders (a single path is accepted too).
        out: the HTML file to write (parent folders are created).
        title: the report's title.

    Returns:
        The path of the written file.

    Raises:
        ValueError: a path is not a folder, or is neither a run folder (holding
            one of config.yaml, metrics.jsonl, results.json) nor a sweep folder
            (holding sweep.csv); or no path is given; or ``out`` cannot be
            written (a folder, under a file, not writable), checked before any work.

    Examples:
        >>> write_report(["runs/sweep_tau"], "sweep.html", title="Temperature sweep")  # doctest: +SKIP
        PosixPath('sweep.html')
    """
    out = check_output_path(out, "out")  # before the figures are rendered, not after
    document = render_report(run_dirs, title)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(document, encoding="utf-8")
    return out


def render_report(run_dirs: Sequence[str | Path] | str | Path, title: str = "aligniform report") -> str:
    """The HTML text of :func:`write_report`, without writing a file."""
    paths = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    if not paths:
        raise ValueError("write_report needs at least one run or sweep folder")
    runs, sweeps = _load_folders([Path(path).expanduser() for path in paths])
    all_runs = runs + [run for sweep in sweeps for run in sweep.runs]
    parts = [
        _header(title, len(all_runs), len(sweeps)),
        _results_section(all_runs),
        *(_sweep_section(sweep) for sweep in sweeps),
        _trajectories_section(all_runs),
        *(_run_section(run) for run in all_runs),
    ]
    return _document(title, "\n".join(parts))


# --------------------------------------------------------------------------- loading


def _load_folders(paths: list[Path]) -> tuple[list[RunFolder], list[SweepFolder]]:
    runs, sweeps = [], []
    for path in paths:
        if not path.is_dir():
            raise ValueError(f"{path} is not a folder; give run folders or sweep folders")
        if (path / "sweep.csv").is_file():
            sweeps.append(_load_sweep(path))
        elif _is_run_folder(path):
            runs.append(_load_run(path, path.name))
        else:
            raise ValueError(
                f"{path} is neither a run folder (holding one of {', '.join(RUN_FILES)}) "
                "nor a sweep folder (holding sweep.csv)"
            )
    _assign_names_and_anchors(runs + [run for sweep in sweeps for run in sweep.runs], sweeps)
    return runs, sweeps


def _is_run_folder(path: Path) -> bool:
    return any((path / name).is_file() for name in RUN_FILES)


def _assign_names_and_anchors(runs: list[RunFolder], sweeps: list[SweepFolder]) -> None:
    seen: dict[str, int] = {}
    for index, run in enumerate(runs, start=1):
        run.anchor = f"run-{index}"
        count = seen[run.name] = seen.get(run.name, 0) + 1
        if count > 1:  # two folders called "run0" in different places
            run.name = f"{run.name} ({count})"
    for index, sweep in enumerate(sweeps, start=1):
        sweep.anchor = f"sweep-{index}"


def _load_run(path: Path, name: str) -> RunFolder:
    run = RunFolder(path=path, name=name)
    missing = [file for file in RUN_FILES if not (path / file).is_file()]
    if missing:
        run.problems.append(f"missing: {', '.join(missing)}")
    if "config.yaml" not in missing:
        run.config_text = _read_text(path / "config.yaml", run.problems)
    if "results.json" not in missing:
        text = _read_text(path / "results.json", run.problems)
        if text is not None:
            try:
                results = json.loads(text)
            except json.JSONDecodeError as error:
                run.problems.append(f"results.json is not valid JSON ({error.msg}, line {error.lineno})")
            else:
                if isinstance(results, dict):
                    run.results = results
                else:
                    run.problems.append(f"results.json holds a {type(results).__name__}, not a JSON object")
    return run


def _read_text(path: Path, problems: list[str]) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        problems.append(f"could not read {path.name}: {error}")
        return None


def _load_sweep(path: Path) -> SweepFolder:
    sweep = SweepFolder(path=path, name=path.name)
    try:
        with (path / "sweep.csv").open(newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            sweep.rows = list(reader)
            sweep.columns = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        sweep.problems.append(f"could not read sweep.csv: {error}")
    children = sorted(child for child in path.iterdir() if child.is_dir() and _is_run_folder(child))
    sweep.runs = [_load_run(child, f"{path.name}/{child.name}") for child in children]
    if not children:
        sweep.problems.append(f"no run sub-folders found (sub-folders holding one of {', '.join(RUN_FILES)})")
    elif sweep.rows and len(sweep.rows) != len(children):
        sweep.problems.append(f"sweep.csv has {len(sweep.rows)} rows but {len(children)} run sub-folders were found")
    return sweep


# --------------------------------------------------------------------------- formatting


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _is_accuracy(key: str) -> bool:
    return "acc" in key.lower()


def _better(key: str) -> str | None:
    """'max' or 'min' when the column has a best value; None when it has no direction."""
    name = key.lower()
    if _is_accuracy(name):
        return "max"
    if name in ("alignment", "uniformity") or name.startswith(("val_alignment", "val_uniformity")):
        return "min"
    return None


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


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _header(title: str, run_count: int, sweep_count: int) -> str:
    from . import __version__

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
        values = [_number((run.results or {}).get(column)) for run in runs]
        values = [value for value in values if value is not None]
        # A single run, or a column where all runs tie, has no best value to point at.
        if direction and len(values) > 1 and max(values) > min(values):
            best[column] = max(values) if direction == "max" else min(values)
    return best


def _results_section(runs: list[RunFolder]) -> str:
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


def _sweep_section(sweep: SweepFolder) -> str:
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
    return len({value for value in values if math.isfinite(value)}) > 1


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


def _run_section(run: RunFolder) -> str:
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


def _trajectories_section(runs: list[RunFolder]) -> str:
    # One overlay of every run's path (Gao et al. 2021, Figure 2), only when there are paths to compare.
    records = {run.name: _trajectory_records(run) for run in runs if (run.path / "metrics.jsonl").is_file()}
    records = {name: run_records for name, run_records in records.items() if run_records is not None}
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
