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

from collections.abc import Sequence
from pathlib import Path

from .._io import write_bytes_atomic
from .._outputs import check_output_path
from ._folders import RUN_FILES, RunFolder, SweepFolder, load_folders, report_inputs
from ._sections import document, header, results_section, run_section, sweep_section, trajectories_section

__all__ = ["RUN_FILES", "RunFolder", "SweepFolder", "render_report", "write_report"]


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
            written (a folder, under a file, not writable) or would replace a
            file a run folder owns or one the report reads, checked before any work.
        OSError: writing failed (a full disk); an existing ``out`` is then left as it was, and the
            error names ``out``.

    Examples:
        >>> write_report(["runs/sweep_tau"], "sweep.html", title="Temperature sweep")  # doctest: +SKIP
        PosixPath('sweep.html')
    """
    paths = _paths(run_dirs)
    # Before the figures are rendered, not after: a wrong `out` costs no work and no file.
    out = check_output_path(out, "`out`", inputs=report_inputs(paths))
    document = render_report(paths, title)
    # Atomic: a full disk leaves the previous report whole, not a fragment of the new one.
    return write_bytes_atomic(out, document.encode("utf-8"))


def render_report(run_dirs: Sequence[str | Path] | str | Path, title: str = "aligniform report") -> str:
    """The HTML text of :func:`write_report`, without writing a file."""
    runs, sweeps = load_folders(_paths(run_dirs))
    all_runs = runs + [run for sweep in sweeps for run in sweep.runs]
    parts = [
        header(title, len(all_runs), len(sweeps)),
        results_section(all_runs),
        *(sweep_section(sweep) for sweep in sweeps),
        trajectories_section(all_runs),
        *(run_section(run) for run in all_runs),
    ]
    return document(title, "\n".join(parts))


def _paths(run_dirs: Sequence[str | Path] | str | Path) -> list[Path]:
    paths = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    if not paths:
        raise ValueError("write_report needs at least one run or sweep folder")
    return [Path(path).expanduser() for path in paths]
