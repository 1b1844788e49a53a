"""Training curves from ``metrics.jsonl``: one panel per group of per-epoch metrics."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ._figure import check_records, finish, new_figure, to_float

#: Names of the loss terms a training run logs next to its total "loss".
LOSS_TERMS = frozenset(
    {"loss", "align", "uniform", "contrastive", "hard_contrastive", "simple", "asymptotic_contrastive"}
)
#: Keys used as the x axis, never plotted as a metric.
_STEP_KEYS = ("epoch", "step", "iteration")
#: Panel order and titles. Keys are assigned to groups by :func:`metric_group`.
PANELS = {
    "loss": "Training loss and loss terms",
    "held_out": "Held-out alignment / uniformity",
    "held_out_other": "Other held-out metrics",
    "accuracy": "Accuracy",
    "lr": "Learning rate",
    "time": "Seconds per epoch",
    "other": "Other metrics",
}
_Y_LABELS = {"loss": "loss", "accuracy": "accuracy (fraction)", "lr": "learning rate", "time": "seconds"}
_LINESTYLES = ("-", "--", ":", "-.")


def metric_group(key: str) -> str | None:
    """The panel of :func:`plot_training_curves` that shows metric ``key`` (None: the x axis).

    Examples:
        >>> [metric_group(k) for k in ("epoch", "align", "val_uniformity", "knn_acc", "lr", "seconds")]
        [None, 'loss', 'held_out', 'accuracy', 'lr', 'time']
    """
    name = key.lower()
    if name in _STEP_KEYS:
        return None
    if "acc" in name:
        return "accuracy"
    if name in ("lr", "learning_rate") or name.startswith("lr_") or name.endswith(("_lr", "learning_rate")):
        return "lr"
    if name in ("seconds", "time", "wall_time") or name.endswith(("_seconds", "_time")):
        return "time"
    if name.startswith(("val_", "test_", "heldout_", "held_out_")):
        # Alignment (~0..2) and uniformity (~−4..0) share a scale; tolerance or
        # effective rank (up to d) would flatten them, so they get their own panel.
        return "held_out" if ("align" in name or "uniform" in name) else "held_out_other"
    # An objective that repeats a term logs it as "uniform_2": strip the counter.
    term = re.sub(r"_\d+$", "", name)
    if term in LOSS_TERMS or "loss" in name or name.startswith(("align", "uniform", "contrastive")):
        return "loss"
    return "other"


def plot_training_curves(
    records_or_path: str | Path | Sequence[Mapping] | Mapping[str, str | Path | Sequence[Mapping]],
    out: str | Path | None = None,
) -> Figure:
    """Per-epoch training curves, one panel per group of metrics.

    Every numeric key found in the records is drawn against ``epoch`` (or the
    record index), grouped by :func:`metric_group` into panels, in this order
    and only when non-empty: training loss and loss terms (``loss``, ``align``,
    ``uniform``, ``contrastive``, ...), held-out alignment / uniformity
    (``val_alignment``, ``val_uniformity``), other held-out metrics, accuracy
    (``knn_acc``, ...), learning rate (log scale when it spans > 20×), seconds
    per epoch, and any other numeric key. Several runs overlay: each run has a
    colour, each metric a line style.

    Args:
        records_or_path: a path to ``metrics.jsonl`` (or its run folder), a list
            of per-epoch dicts, or a dict run name -> (path or list) to overlay runs.
        out: when given, save ``<out>.png`` and ``<out>.svg``.

    Returns:
        The matplotlib ``Figure`` (one axes per non-empty panel).

    Raises:
        ValueError: no numeric metric in any record.

    Examples:
        >>> rows = [{"epoch": e, "loss": 1 / e, "knn_acc": 0.5 + e / 100, "lr": 0.1} for e in range(1, 6)]
        >>> [axes.get_title() for axes in plot_training_curves(rows).axes]
        ['Training loss and loss terms', 'Accuracy', 'Learning rate']
    """
    runs = _load_runs(records_or_path)
    panels: dict[str, list[str]] = {}
    for records in runs.values():
        for key in _numeric_keys(records):
            group = metric_group(key)
            if group is not None and key not in panels.setdefault(group, []):
                panels[group].append(key)
    panels = {group: panels[group] for group in PANELS if panels.get(group)}
    if not panels:
        raise ValueError("the training records contain no numeric metric to plot")

    columns = min(len(panels), 3)
    rows = math.ceil(len(panels) / columns)
    figure = new_figure(4.3 * columns, 3.2 * rows)
    for index, (group, keys) in enumerate(panels.items()):
        axes = figure.add_subplot(rows, columns, index + 1)
        _draw_panel(axes, group, keys, runs)
    return finish(figure, out)


def _load_runs(records_or_path) -> dict[str, list[dict]]:
    if isinstance(records_or_path, (str, Path)):
        from ..train.run_log import read_metrics  # importing the training package only when a file is read

        return {"": read_metrics(records_or_path)}
    if isinstance(records_or_path, Mapping):
        runs = {}
        for name, run in records_or_path.items():
            if not isinstance(run, (str, Path, list, tuple)):
                raise ValueError(
                    "a dict passed to plot_training_curves must map run names to a metrics.jsonl path or a "
                    f"list of records; got {type(run).__name__} for {name!r}"
                )
            runs[str(name)] = _load_runs(run)[""]
        if not runs:
            raise ValueError("no runs given")
        return runs
    return {"": check_records(records_or_path, "records")}


def _numeric_keys(records: list[dict]) -> list[str]:
    keys: list[str] = []
    for record in records:
        for key, value in record.items():
            if key not in keys and to_float(value) is not None and not isinstance(value, str):
                keys.append(key)
    return keys


def _curve(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    points = []
    for index, record in enumerate(records):
        value = to_float(record.get(key))
        if value is None:
            continue
        step = next((to_float(record.get(name)) for name in _STEP_KEYS if to_float(record.get(name)) is not None), None)
        points.append((index + 1 if step is None else step, value))
    points.sort()
    return np.array([p[0] for p in points]), np.array([p[1] for p in points])


def _draw_panel(axes, group: str, keys: list[str], runs: dict[str, list[dict]]) -> None:
    overlay = len(runs) > 1
    plotted = []
    for run_index, (run, records) in enumerate(runs.items()):
        for key_index, key in enumerate(keys):
            steps, values = _curve(records, key)
            if not len(values):
                continue
            color = f"C{(run_index if overlay else key_index) % 10}"
            style = _LINESTYLES[key_index % len(_LINESTYLES)] if overlay else "-"
            marker = "o" if len(values) < 30 else None  # short runs: show the individual epochs
            label = f"{run}: {key}" if overlay else key
            axes.plot(steps, values, linestyle=style, color=color, marker=marker, markersize=3, label=label)
            plotted.append(values)
    if group == "lr" and plotted:
        values = np.concatenate(plotted)
        if values.min() > 0 and values.max() / values.min() > 20:  # step decays read better on a log axis
            axes.set_yscale("log")
    axes.set_title(PANELS[group], fontsize=10)
    axes.set_xlabel("epoch")
    axes.set_ylabel(_Y_LABELS.get(group, "value"))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
