"""How a run's configuration is put together from defaults, a YAML file, a stored run and overrides."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import ConfigError, TrainConfig, read_yaml_file
from ..configs import find_config
from .run_folder import stored_config


def resolve_config(
    source: str | Path | None = None, overrides: Mapping[str, Any] | None = None, *, resume: bool = False
) -> TrainConfig:
    """The configuration of a run: defaults < the run's own configuration (on resume) < ``source`` < ``overrides``.

    This is how ``aligniform train`` merges ``--config`` and its flags; a Python caller gets the same merge.
    On resume, the base is the configuration of the run in ``out`` (from ``overrides``,
    else the default ``out``) as its checkpoint carries it (its ``config.yaml`` when no epoch finished yet),
    so a resume needs no ``config.yaml`` and cannot be misled by an edited one; a folder without a run keeps
    the defaults (the run folder's own checks then refuse the resume). A ``source`` given on resume changes
    only the options it sets (e.g. a file holding just ``epochs``).

    Args:
        source: a YAML file of option: value, or the name of a shipped config (``"mnist5k"``,
            :func:`aligniform.configs.find_config`; a file that exists wins).
        overrides: option: value pairs applied last; ``None`` values are ignored, as for unset flags.
        resume: whether the run in ``out`` is being continued.

    Raises:
        ConfigError: the file is missing or invalid, or a value is (the message names the option).

    Examples:
        >>> config = resolve_config(overrides={"dataset": "digits", "epochs": 3, "lr": None})
        >>> config.dataset, config.epochs, config.lr == TrainConfig().lr
        ('digits', 3, True)
    """
    overrides = dict(overrides or {})
    if source is not None:  # a path, or a shipped config by name
        source = find_config(source, ConfigError)
    from_file = TrainConfig.from_yaml(source) if source is not None else None
    base = from_file or TrainConfig()
    if resume:
        out = overrides["out"] if overrides.get("out") is not None else base.out
        folder = Path(out)
        if str(out).strip() and ((folder / "checkpoint.pt").is_file() or (folder / "config.yaml").is_file()):
            # A file given on resume changes only the options it sets: those it leaves out keep the run's values
            # (not the defaults, which would read as changes the resume must refuse).
            values = stored_config(folder).to_dict()
            if source is not None and from_file is not None:
                values.update({name: getattr(from_file, name) for name in _options_in(source)})
            base = TrainConfig.from_dict(values)
    return base.replace(**overrides)


def _options_in(source: str | Path) -> list[str]:
    """The options a (valid, already read) YAML config file sets."""
    values = read_yaml_file(source, "config file") or {}
    return [name for name in values if name in TrainConfig.option_names()]
