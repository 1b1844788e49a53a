"""Reusing finished work: a run folder whose saved config matches the one asked for need not be trained again.

A run folder (see :class:`aligniform.train.Trainer`) holds ``config.yaml`` (the
config it was trained with) and, once :func:`aligniform.train.run` has
evaluated it, ``results.json``. Two configs *match* when every option agrees
except those that do not change what is trained: the output folder, the
device, the progress display and how often the run monitored held-out
metrics (:data:`IGNORED_OPTIONS`). Matching compares options, not code:
after changing a model's code, use a new output folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import ConfigError, TrainConfig

#: Options that do not change what a run trains or measures.
IGNORED_OPTIONS = frozenset({"out", "device", "progress", "validate_every"})


def same_config(saved: TrainConfig, wanted: TrainConfig) -> bool:
    """Whether ``saved`` trains the same thing as ``wanted`` (output folder, device and progress aside).

    Examples:
        >>> from aligniform.config import TrainConfig
        >>> same_config(TrainConfig(out="a", device="cpu"), TrainConfig(out="b", device="cuda"))
        True
        >>> same_config(TrainConfig(epochs=1), TrainConfig(epochs=2))
        False
    """
    a, b = saved.to_dict(), wanted.to_dict()
    return all(a.get(key) == b.get(key) for key in a.keys() | b.keys() if key not in IGNORED_OPTIONS)


def saved_config(run_dir: str | Path) -> TrainConfig | None:
    """The config a run folder was trained with (its ``config.yaml``), or None when missing or unreadable."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return None
    try:
        return TrainConfig.from_yaml(path)
    except ConfigError:  # e.g. written by a version with other options
        return None


def matches(run_dir: str | Path, config: TrainConfig) -> bool:
    """Whether ``run_dir`` holds a run (finished or not) trained with a config matching ``config``."""
    saved = saved_config(run_dir)
    return saved is not None and same_config(saved, config)


def finished_results(run_dir: str | Path, config: TrainConfig) -> dict | None:
    """The results of a finished run in ``run_dir`` made with a matching config, or None.

    A run is finished when its ``results.json`` exists. None when the folder,
    its config or its results are missing or unreadable, or the config differs
    from ``config`` (see :func:`same_config`).

    Examples:
        >>> import tempfile
        >>> from aligniform.config import TrainConfig
        >>> finished_results(tempfile.mkdtemp(), TrainConfig()) is None
        True
    """
    results = Path(run_dir) / "results.json"
    if not results.is_file() or not matches(run_dir, config):
        return None
    try:
        values = json.loads(results.read_text())
    except (OSError, ValueError):  # a results file cut short: the run is not finished
        return None
    return values if isinstance(values, dict) else None
