"""Study options from text: the ``KEY=VALUE`` assignments of ``aligniform study NAME --set``."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable
from typing import Any

from ..config import parse_value


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
