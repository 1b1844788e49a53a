"""Typed errors a user can fix, naming options by their field names so each front end can spell them its own way.

The library never spells a command-line flag. A message names an option (a :class:`~aligniform.config.TrainConfig`
field, a study option, a function argument) by its field name in backticks, `` `knn_k` ``; the command line
(:mod:`aligniform.cli.errors`) renders it as ``--knn-k`` with :func:`render_options`, a Python caller reads the field
name it passed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

# A backticked identifier, optionally with a value: `knn_k` or `epochs`.
_OPTION = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


def option_names_in(message: str) -> tuple[str, ...]:
    """The option field names a message mentions (backticked identifiers), in order, without repeats.

    Examples:
        >>> option_names_in("`knn_k` (5000) must not exceed the training set (1294); lower `knn_k` or `test_size`")
        ('knn_k', 'test_size')
    """
    return tuple(dict.fromkeys(_OPTION.findall(message)))


def render_options(message: str, spell: Mapping[str, str] | Callable[[str], str | None]) -> str:
    """``message`` with each backticked option name replaced by its spelling; names without one keep the backticks.

    Examples:
        >>> render_options("`knn_k` must be at most 1294", {"knn_k": "--knn-k"})
        '--knn-k must be at most 1294'
        >>> render_options("set `normalize` or pass unit rows", lambda name: None)
        'set `normalize` or pass unit rows'
    """
    lookup = spell.get if isinstance(spell, Mapping) else spell

    def replace(match: re.Match[str]) -> str:
        spelled = lookup(match.group(1))
        return spelled if spelled else match.group(0)

    return _OPTION.sub(replace, message)


class OptionError(ValueError):
    """A value a user gave is wrong, and changing that option fixes it.

    The message names options as backticked field names (see the module docstring); :attr:`options` lists them.

    Examples:
        >>> error = OptionError("`knn_k` (5000) must not exceed the number of training samples (1294)")
        >>> error.options
        ('knn_k',)
        >>> render_options(str(error), {"knn_k": "--knn-k"})
        '--knn-k (5000) must not exceed the number of training samples (1294)'
    """

    @property
    def options(self) -> tuple[str, ...]:
        return option_names_in(str(self))
