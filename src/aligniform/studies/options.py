"""Study options from text: the ``KEY=VALUE`` assignments of ``aligniform study NAME --set``."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable
from typing import Any

from .._numerics import is_finite_number
from ..config import ConfigError, TrainConfig, parse_value
from ..errors import OptionError


def parse_study_options(options_class: type, assignments: Iterable[str]) -> dict[str, Any]:
    """``key=value`` strings -> typed overrides of a study's options dataclass.

    Each value is read as the option's annotated type, or the type of its default where the annotation does
    not resolve (:func:`aligniform.config.parse_value`): lists as ``a,b,c``, booleans as
    ``true/false``, ``yes/no`` or ``1/0``. Dashes in keys stand for underscores.

    Args:
        options_class: the study's options dataclass, e.g. ``Theorem1Options``.
        assignments: strings ``KEY=VALUE``.

    Returns:
        The overrides, by option name, ready for ``run_<name>_study(out, **overrides)``.

    Raises:
        ValueError: an assignment has no ``=`` or names no option; a value cannot
            be read as its option's type (a :class:`~aligniform.config.ConfigError`);
            a count is out of range (see :func:`check_study_option`).

    Examples:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Options:
        ...     taus: tuple[float, ...] = (0.5, 1.0)
        ...     progress: bool = True
        >>> parse_study_options(Options, ["taus=0.1,0.2", "progress=no"])
        {'taus': (0.1, 0.2), 'progress': False}
    """
    defaults = {
        field.name: None if field.default is dataclasses.MISSING else field.default
        for field in dataclasses.fields(options_class)
    }
    try:  # the annotations, where they resolve: an empty tuple default says nothing of its items' type
        kinds = typing.get_type_hints(options_class)
    except (NameError, TypeError):
        kinds = {}
    overrides = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in defaults:
            raise ValueError(f"expects KEY=VALUE with KEY one of {', '.join(defaults)}; got {assignment!r}")
        overrides[key] = check_study_option(key, parse_value(text.strip(), kinds.get(key, defaults[key]), key))
    return overrides


#: Integer options that are not counts: any integer.
ANY_INTEGER_OPTIONS = ("seed",)
#: Integer options where 0 means "leave the setting alone": 0 or more.
NON_NEGATIVE_OPTIONS = {
    "threads": "0 (leave torch's setting) or a positive number of threads",
    "warmup_epochs": "0 (no warm-up) or a positive number of epochs",
}


def check_study_option(name: str, value: Any) -> Any:
    """``value`` if it is in range for the study option ``name``, else a ``ValueError`` naming it.

    Integer options of the studies are counts (epochs, steps, dimensions, workers, ...) and must be
    positive; ``threads`` may be 0 (leave torch's setting) and ``seed`` is any integer. Other
    options are checked by the study's options class.

    Examples:
        >>> check_study_option("threads", 0)
        0
        >>> check_study_option("threads", -1)
        Traceback (most recent call last):
        ...
        ValueError: threads must be 0 (leave torch's setting) or a positive number of threads, got -1
    """
    if not isinstance(value, int) or isinstance(value, bool) or name in ANY_INTEGER_OPTIONS:
        return value
    if name in NON_NEGATIVE_OPTIONS:
        if value < 0:
            raise ValueError(f"{name} must be {NON_NEGATIVE_OPTIONS[name]}, got {value}")
        return value
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return value


#: Study option -> the :class:`~aligniform.config.TrainConfig` field it sets in the runs a study trains; checked
#: as the training config checks it. ``lr`` is checked in every study (each optimiser needs a positive rate),
#: the others only in the studies that train image encoders (those with a ``dataset`` option).
TRAINING_OPTIONS = {
    "lr": "lr",
    "epochs": "epochs",
    "encoder_epochs": "epochs",
    "batch_size": "batch_size",
    "dim": "dim",
    "encoder_objective": "objective",
    "linear_probe": "linear_probe",
    "schedule": "schedule",
    "warmup_epochs": "warmup_epochs",
    "device": "device",
}


def validate_study_options(options: Any) -> Any:
    """``options`` (a study's options dataclass) if every value can run, else an :class:`OptionError` naming it.

    What the options class does not check itself but would fail only once the study has started (and
    created its output folder): a number that is not finite (``nan``, ``inf``, also inside a list), an
    option of the study's training runs that :class:`~aligniform.config.TrainConfig` refuses (see
    :data:`TRAINING_OPTIONS`), an unknown ``dataset`` or ``model``.

    Examples:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Options:
        ...     taus: tuple[float, ...] = (0.5, 1.0)
        ...     lr: float = 0.1
        >>> validate_study_options(Options(taus=(0.5, float("nan"))))
        Traceback (most recent call last):
        ...
        aligniform.errors.OptionError: `taus` must hold finite numbers, got (0.5, nan)
        >>> validate_study_options(Options(lr=-1.0))
        Traceback (most recent call last):
        ...
        aligniform.errors.OptionError: `lr` must be a positive number, got -1.0
    """
    values = {field.name: getattr(options, field.name) for field in dataclasses.fields(options)}
    for name, value in values.items():
        items = value if isinstance(value, (tuple, list)) else [value]
        if any(isinstance(item, float) and not is_finite_number(item) for item in items):
            described = "hold finite numbers" if isinstance(value, (tuple, list)) else "be a finite number"
            raise OptionError(f"`{name}` must {described}, got {value!r}")
    trains_encoders = "dataset" in values
    for name, field in TRAINING_OPTIONS.items():
        if name not in values or (name != "lr" and not trains_encoders):
            continue
        try:
            TrainConfig.from_dict({field: values[name]})
        except ConfigError as error:
            message = str(error)
            # TrainConfig's messages start with its field's name ("`lr` must be ..." or "objective: ...").
            named = next((name for name in (f"`{field}`", field) if message.startswith(name)), None)
            rest = message[len(named) :] if named else f": {message}"
            raise OptionError(f"`{name}`{rest}") from None
    if trains_encoders:
        from ..data.dataset import dataset_info
        from ..models.registry import MODELS

        try:
            dataset_info(values["dataset"])
        except ValueError as error:
            raise OptionError(f"`dataset`: {error}") from None
        if "model" in values and values["model"] not in MODELS:
            raise OptionError(f"`model` must be one of {', '.join(MODELS)}, got {values['model']!r}")
    return options
