"""The studies' one way to get a run's results: reuse a finished run, resume it, or train it; serial or parallel.

Training goes through the trainer's public entry points only (:func:`aligniform.train.run`,
:mod:`aligniform.train.reuse`); parallel runs through :func:`aligniform.sweep.train_in_processes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..config import TrainConfig
from .common import Progress

#: A run's status in the studies' rows and counts, in the order the reports list them.
STATUSES = ("trained", "resumed", "reused")


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


def train_all(configs: Sequence[TrainConfig], workers: int, progress: Progress) -> list[tuple[dict, str]]:
    """Results and status of every run, in order: in this process one after another, or ``workers`` processes.

    With several workers, finished runs are reused and the others each train in their own process
    (an interrupted one trains again from the start there).

    Raises:
        RuntimeError: a run failed or left no results (naming it and its train.log).
    """
    from ..sweep import train_in_processes
    from ..train.reuse import finished_results

    if workers == 1:
        return [train_or_reuse(config, progress) for config in configs]
    pending = [config for config in configs if finished_results(config.out, config) is None]
    progress(f"{len(configs) - len(pending)} runs finished before; training {len(pending)} in {workers} processes")
    failed = train_in_processes(pending, workers)
    if failed:
        raise RuntimeError(
            f"{len(failed)} run(s) failed: {', '.join(failed)}; see their train.log in "
            f"{Path(pending[0].out).parent}, fix the cause and rerun the study (finished runs are kept)"
        )
    done = {config.out for config in pending}
    outcomes = []
    for config in configs:
        results = finished_results(config.out, config)
        if results is None:
            raise RuntimeError(f"run {config.out} left no results.json; see its train.log")
        outcomes.append((results, "trained" if config.out in done else "reused"))
    return outcomes


def status_counts(rows: Sequence[dict]) -> dict[str, int]:
    """How many rows were trained, resumed and reused.

    Examples:
        >>> status_counts([{"status": "reused"}, {"status": "trained"}])
        {'trained': 1, 'resumed': 0, 'reused': 1}
    """
    return {status: sum(row["status"] == status for row in rows) for status in STATUSES}
