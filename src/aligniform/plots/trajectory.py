"""The alignment–uniformity trajectory: a run's held-out metrics as a path on the alignment–uniformity plane.

Gao et al. (SimCSE, EMNLP 2021, Figure 2) plot ``ℓ_align`` against
``ℓ_uniform`` every few training steps to show how an objective moves the
embeddings: the path's direction tells whether training buys uniformity at the
cost of alignment, or the reverse. Both axes are losses, so lower is better and
the bottom-left corner is the goal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ._figure import check_records, finish, new_figure, to_float

#: What :func:`plot_trajectory` draws: one run's records or its path, a list of paths, or run name -> either.
RunsInput = str | Path | Sequence[Mapping] | Sequence[str | Path] | Mapping[str, str | Path | Sequence[Mapping]]
#: Key pairs tried in order when none is given: our runs' metrics.jsonl, then plain metric names.
DEFAULT_KEY_PAIRS = (("val_alignment", "val_uniformity"), ("alignment", "uniformity"))
#: Keys that order the points, finest first (a per-step log usually carries the epoch too).
PROGRESS_KEYS = ("step", "global_step", "iteration", "epoch")
#: Beyond this many points, arrows are drawn on evenly spaced segments only (hundreds of arrows hide the path).
MAX_ARROWS = 20


@dataclass
class Trajectory:
    """One run's path on the alignment–uniformity plane, in training order.

    Attributes:
        uniformity: the x coordinates (one per logged evaluation).
        alignment: the y coordinates.
        progress: the step or epoch of each point (the record's position, from 1, when none is logged).
        progress_key: the key ``progress`` was read from (``"record"`` when none).
        keys: the (alignment, uniformity) keys the points were read from.
    """

    uniformity: np.ndarray
    alignment: np.ndarray
    progress: np.ndarray
    progress_key: str
    keys: tuple[str, str]


def trajectory_points(
    records: Sequence[Mapping], alignment_key: str | None = None, uniformity_key: str | None = None
) -> Trajectory | None:
    """The alignment–uniformity path of one run's records, or ``None`` when they hold no such pair.

    The keys are ``alignment_key`` / ``uniformity_key`` when given; otherwise the
    first pair present in the records among ``val_alignment`` / ``val_uniformity``
    (our runs' ``metrics.jsonl``), ``alignment`` / ``uniformity``, and any
    ``<prefix>alignment`` / ``<prefix>uniformity`` pair (a callback's
    ``eval_alignment``, ``hypersphere/alignment``, ...). Records missing either
    value (training-loss lines of a per-step log, NaN written as null) are
    skipped. Points are ordered by ``step`` (or ``global_step``, ``iteration``,
    ``epoch``) when every kept record has it, else kept in record order.

    Args:
        records: one dict per logged evaluation (epoch or step).
        alignment_key: the key of the alignment values; found automatically when omitted.
        uniformity_key: the key of the uniformity values; found automatically when omitted.

    Returns:
        The path, or ``None`` when no record holds both values.

    Examples:
        >>> rows = [{"epoch": 2, "val_alignment": 0.6, "val_uniformity": -2.0}, {"epoch": 1, "loss": 3.0},
        ...         {"epoch": 1, "val_alignment": 0.2, "val_uniformity": -1.0}]
        >>> path = trajectory_points(rows)
        >>> path.uniformity.tolist(), path.alignment.tolist(), path.progress.tolist()
        ([-1.0, -2.0], [0.2, 0.6], [1.0, 2.0])
        >>> trajectory_points([{"epoch": 1, "loss": 3.0}]) is None
        True
    """
    rows = check_records(records, "records")
    keys = _find_keys(rows, alignment_key, uniformity_key)
    if keys is None:
        return None
    points = []
    for index, row in enumerate(rows, start=1):
        align, uniform = to_float(row.get(keys[0])), to_float(row.get(keys[1]))
        if align is not None and uniform is not None:
            points.append((row, index, uniform, align))
    if not points:
        return None
    progress_key = next(
        (key for key in PROGRESS_KEYS if all(to_float(row.get(key)) is not None for row, *_ in points)), None
    )
    if progress_key is None:
        progress = [float(index) for _, index, *_ in points]
    else:
        progress = [to_float(row[progress_key]) for row, *_ in points]
    # A stable sort: records logged twice at one step keep their logged order.
    order = sorted(range(len(points)), key=progress.__getitem__)
    return Trajectory(
        uniformity=np.array([points[i][2] for i in order]),
        alignment=np.array([points[i][3] for i in order]),
        progress=np.array([progress[i] for i in order], dtype=np.float64),
        progress_key=progress_key or "record",
        keys=keys,
    )


def _find_keys(rows: list[Mapping], alignment_key: str | None, uniformity_key: str | None) -> tuple[str, str] | None:
    if alignment_key is not None or uniformity_key is not None:
        if alignment_key is None or uniformity_key is None:
            raise ValueError("give both alignment_key and uniformity_key, or neither")
        return alignment_key, uniformity_key
    present: list[str] = []
    for row in rows:
        present += [key for key in row if isinstance(key, str) and key not in present]
    for pair in DEFAULT_KEY_PAIRS:
        if pair[0] in present and pair[1] in present:
            return pair
    for key in present:  # a callback's own prefix: "eval_alignment" / "eval_uniformity", "hypersphere/alignment"
        if key.endswith("alignment") and key[: -len("alignment")] + "uniformity" in present:
            return key, key[: -len("alignment")] + "uniformity"
    return None


def plot_trajectory(
    records_or_runs: RunsInput,
    out: str | Path | None = None,
    *,
    alignment_key: str | None = None,
    uniformity_key: str | None = None,
    title: str | None = None,
) -> Figure:
    """Held-out alignment against uniformity along training, as a path (Gao et al. 2021, Figure 2).

    x is uniformity, y is alignment (both lower is better). Each logged
    evaluation is a point, joined in training order by arrows; the start is an
    open circle and the end a star. One run is coloured by its epoch or step
    (with a colour bar); several runs share one plot, one colour each, with a
    legend. Runs whose records hold no alignment / uniformity pair are left
    out (see :func:`trajectory_points` for the keys looked for).

    Args:
        records_or_runs: a path to ``metrics.jsonl`` (or its run folder), a list
            of records (dicts with alignment / uniformity keys, as a callback
            logs), a list of paths (runs named after their folders), or a dict
            run name -> (path or list of records).
        out: when given, save ``<out>.png`` and ``<out>.svg``.
        alignment_key: the key of the alignment values; found automatically when omitted.
        uniformity_key: the key of the uniformity values; found automatically when omitted.
        title: the axes title (default: "Alignment–uniformity trajectory").

    Returns:
        The matplotlib ``Figure``: one axes, plus a colour bar for a single run.
        Each run's path is the axes line labelled with the run's name (``"_path"``
        for a single unnamed run), its points in training order.

    Raises:
        ValueError: no run has a record with both values, or an input is not
            records or paths (a path that cannot be read raises as
            :func:`aligniform.train.run_log.read_metrics` does).

    Examples:
        >>> rows = [{"epoch": e, "val_alignment": 0.2 + 0.1 * e, "val_uniformity": -1.0 - 0.5 * e} for e in range(1, 6)]
        >>> figure = plot_trajectory(rows)
        >>> figure.axes[0].get_xlabel()
        'uniformity  ℒ_uniform (lower is better)'
        >>> figure.axes[0].lines[0].get_xdata().tolist()
        [-1.5, -2.0, -2.5, -3.0, -3.5]
        >>> plot_trajectory({"a": rows, "b": rows[:3]}).axes[0].get_legend() is not None
        True
    """
    runs = _load_runs(records_or_runs)
    paths = {name: trajectory_points(records, alignment_key, uniformity_key) for name, records in runs.items()}
    paths = {name: path for name, path in paths.items() if path is not None}
    if not paths:
        wanted = (
            f"{alignment_key!r} / {uniformity_key!r}"
            if alignment_key is not None
            else "val_alignment / val_uniformity, alignment / uniformity or <prefix>alignment / <prefix>uniformity"
        )
        raise ValueError(f"no record holds both alignment and uniformity values (looked for {wanted})")

    figure = new_figure(5.6, 4.4)
    axes = figure.add_subplot(1, 1, 1)
    single = len(paths) == 1 and len(runs) == 1 and "" in paths
    for index, (name, path) in enumerate(paths.items()):
        _draw_path(figure, axes, name or "_path", path, None if single else f"C{index % 10}")
    axes.set_xlabel("uniformity  ℒ_uniform (lower is better)")
    axes.set_ylabel("alignment  ℒ_align (lower is better)")
    axes.set_title(title or "Alignment–uniformity trajectory", fontsize=10)
    axes.grid(alpha=0.3)
    if not single:
        axes.legend(fontsize=7 if len(paths) > 6 else 8, title="start ○  end ★", title_fontsize=7)
    return finish(figure, out)


def _draw_path(figure: Figure, axes, label: str, path: Trajectory, color: str | None) -> None:
    x, y = path.uniformity, path.alignment
    line_color = color or "0.55"
    axes.plot(x, y, color=line_color, linewidth=1.2, alpha=0.8, label=label, zorder=2)
    if len(x) > 1:
        segments = np.arange(len(x) - 1)
        if len(segments) > MAX_ARROWS:
            segments = np.unique(np.linspace(0, len(x) - 2, MAX_ARROWS).round().astype(int))
        # Arrows ending at the midpoint of each segment: they show the direction without hiding the next point.
        axes.quiver(
            x[segments],
            y[segments],
            (x[segments + 1] - x[segments]) / 2,
            (y[segments + 1] - y[segments]) / 2,
            angles="xy",
            scale_units="xy",
            scale=1,
            color=line_color,
            width=0.004,
            headwidth=5,
            headlength=6,
            zorder=3,
        )
    size = 22 if len(x) <= 50 else 8
    if color is None:  # one run: colour each point by its epoch or step
        points = axes.scatter(x, y, c=path.progress, cmap="viridis", s=size, zorder=4)
        figure.colorbar(points, ax=axes, label=path.progress_key)
        edge = "black"
    else:
        axes.scatter(x, y, color=color, s=size * np.linspace(0.4, 1.0, len(x)), zorder=4)
        edge = color
    axes.scatter(x[:1], y[:1], s=90, facecolors="white", edgecolors=edge, linewidths=1.5, marker="o", zorder=5)
    axes.scatter(x[-1:], y[-1:], s=150, color=color or "black", edgecolors="white", marker="*", zorder=5)
    if color is None:
        _label_ends(axes, np.asarray(x, dtype=float), np.asarray(y, dtype=float))


def _label_ends(axes, x: np.ndarray, y: np.ndarray) -> None:
    """Write "start" and "end" beside the path's two ends, each on the side facing away from the other end.

    Both labels at the same offset would overlap whenever the run ends near where it started (a short run,
    or a path that loops back); pushing them apart along the start-to-end direction keeps them apart.
    """
    if len(x) == 1:
        axes.annotate("start", (x[0], y[0]), textcoords="offset points", xytext=(6, 6), fontsize=8)
        return
    # The direction in axis units (the path spans the plot), so that x and y steps weigh alike.
    spans = [float(np.ptp(v)) or 1.0 for v in (x, y)]
    direction = np.array([(x[-1] - x[0]) / spans[0], (y[-1] - y[0]) / spans[1]])
    length = float(np.hypot(*direction))
    direction = direction / length if length > 1e-9 else np.array([1.0, 1.0]) / np.sqrt(2.0)
    for index, text, sign in ((0, "start", -1.0), (len(x) - 1, "end", 1.0)):
        dx, dy = sign * 9.0 * direction
        axes.annotate(
            text,
            (x[index], y[index]),
            textcoords="offset points",
            xytext=(dx, dy),
            ha="left" if dx >= 0 else "right",
            va="bottom" if dy >= 0 else "top",
            fontsize=8,
        )


def _load_runs(records_or_runs) -> dict[str, list[Mapping]]:
    from ..train.run_log import read_metrics  # the training package is imported only when a file is read

    if isinstance(records_or_runs, (str, Path)):
        return {"": read_metrics(records_or_runs)}
    if isinstance(records_or_runs, Mapping):
        runs: dict[str, list[Mapping]] = {}
        for name, run in records_or_runs.items():
            if isinstance(run, (str, Path)):
                runs[str(name)] = read_metrics(run)
            elif isinstance(run, (list, tuple)):
                runs[str(name)] = check_records(run, f"records of {name!r}")
            else:
                raise ValueError(
                    "a dict passed to plot_trajectory must map run names to a metrics.jsonl path or a "
                    f"list of records; got {type(run).__name__} for {name!r}"
                )
        if not runs:
            raise ValueError("no runs given")
        return runs
    items = list(records_or_runs) if isinstance(records_or_runs, (list, tuple)) else None
    if items and all(isinstance(item, (str, Path)) for item in items):
        named: dict[str, list[Mapping]] = {}
        for item in items:
            name = base = _run_name(Path(item))
            count = 1
            while name in named:  # two folders called "run0" in different places
                count += 1
                name = f"{base} ({count})"
            named[name] = read_metrics(item)
        return named
    return {"": check_records(records_or_runs, "records")}


def _run_name(path: Path) -> str:
    path = path.expanduser()
    return path.parent.name if path.name == "metrics.jsonl" else path.name
