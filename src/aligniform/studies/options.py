"""Study options from text: the ``KEY=VALUE`` assignments of ``aligniform study NAME --set``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from ..config import parse_value


def parse_study_options(options_class: type, assignments: Iterable[str]) -> dict[str, Any]:
    """``key=value`` strings -> typed overrides of a study's options dataclass.

    Each value is read as the type of the option's default
    (:func:`aligniform.config.parse_value`): lists as ``a,b,c``, booleans as
    ``true/false``, ``yes/no`` or ``1/0``. Dashes in keys stand for underscores.

    Args:
        options_class: the study's options dataclass, e.g. ``Theorem1Options``.
        assignments: strings ``KEY=VALUE``.

    Returns:
        The overrides, by option name, ready for ``run_<name>_study(out, **overrides)``.

    Raises:
        ValueError: an assignment has no ``=`` or names no option; a value cannot
            be read as its option's type (a :class:`~aligniform.config.ConfigError`).

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
    overrides = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in defaults:
            raise ValueError(f"expects KEY=VALUE with KEY one of {', '.join(defaults)}; got {assignment!r}")
        overrides[key] = parse_value(text.strip(), defaults[key], key)
    return overrides
