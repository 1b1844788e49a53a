"""Studies that check the papers' claims numerically (``aligniform study NAME``).

Each study is one function ``run_<name>_study(out, options=None, **overrides) -> dict``
with an options dataclass of CPU-small defaults. It writes ``<out>/<name>.json``,
a markdown table ``<out>/<name>.md`` and figures (``.png`` + ``.svg``), prints
progress lines, and returns the results. A study only orchestrates: its data models live in
:mod:`aligniform.data.synthetic`, its losses in :mod:`aligniform.losses`, its metrics in
:mod:`aligniform.metrics` and :mod:`aligniform.stats`, its figures in :mod:`aligniform.plots`,
and run reuse in :mod:`aligniform.train.reuse`.

=================  ===================================  ======================================================
name               function / options                   claim (paper)
=================  ===================================  ======================================================
``correlation``    :func:`run_correlation_study`        lower alignment and lower uniformity both go with
                   :class:`CorrelationOptions`          higher accuracy across many encoders (Wang & Isola 2020)
``theorem1``       :func:`run_theorem1_study`           L_contrastive − log M converges to the limit of
                   :class:`Theorem1Options`             Theorem 1 as M grows, with a gap ~1/M (Wang & Isola 2020)
``latent-classes`` :func:`run_latent_classes_study`     the mean classifier follows Arora et al.'s unsupervised
                   :class:`LatentClassesOptions`        loss; Lemma 4.3's bound holds (Arora et al. 2019)
``temperature``    :func:`run_temperature_study`        uniformity falls and tolerance rises with τ; the hard
                   :class:`TemperatureOptions`          loss stays uniform at large τ (Wang & Liu 2021)
``family``         :func:`run_family_study`             where each loss of the family puts one encoder on the
                   :class:`FamilyOptions`               alignment–uniformity map; DCL at small batch, SupCon's
                                                        tolerance (Yeh et al. 2022; Khosla et al. 2020)
``budget``         :func:`run_budget_study`             no runs of its own: judges the runs of a pre-registered
                   :class:`BudgetOptions`               design at today's budget and 3× (are three failures
                                                        budget effects?)
``summary``        :func:`run_summary_study`            no claim of its own: REPRODUCTION.md's table of every
                   :class:`SummaryOptions`              claim and verdict, read from the studies' outputs
=================  ===================================  ======================================================

Examples:
    >>> from pathlib import Path
    >>> from aligniform.studies import run_latent_classes_study
    >>> results = run_latent_classes_study(Path("/tmp/lc"), num_classes=(4,), steps=50)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below load on first use (PEP 562): the CLI lists the studies without importing them
    from .budget import BudgetOptions, run_budget_study
    from .correlation import CorrelationOptions, run_correlation_study
    from .family import FamilyOptions, run_family_study
    from .latent_classes import LatentClassesOptions, run_latent_classes_study
    from .summary import SummaryOptions, run_summary_study
    from .temperature import TemperatureOptions, run_temperature_study
    from .theorem1 import Theorem1Options, anchor_limit_terms, run_theorem1_study

#: Study name -> (module of this package, run function, options dataclass): the one list of the studies.
REGISTRY = {
    "correlation": ("correlation", "run_correlation_study", "CorrelationOptions"),
    "theorem1": ("theorem1", "run_theorem1_study", "Theorem1Options"),
    "latent-classes": ("latent_classes", "run_latent_classes_study", "LatentClassesOptions"),
    "temperature": ("temperature", "run_temperature_study", "TemperatureOptions"),
    "family": ("family", "run_family_study", "FamilyOptions"),
    "budget": ("budget", "run_budget_study", "BudgetOptions"),
    "summary": ("summary", "run_summary_study", "SummaryOptions"),
}
#: The studies' names, sorted (what ``aligniform study`` accepts).
STUDY_NAMES = tuple(sorted(REGISTRY))
_HOMES = {attribute: module for module, *attributes in REGISTRY.values() for attribute in attributes}
_HOMES["anchor_limit_terms"] = "theorem1"


def load_study(name: str) -> tuple[Any, type]:
    """The run function and options dataclass of the study ``name`` (importing only its module).

    Examples:
        >>> load_study("latent-classes")[1].__name__
        'LatentClassesOptions'
    """
    module, run, options = REGISTRY[name]
    loaded = importlib.import_module(f".{module}", __name__)
    return getattr(loaded, run), getattr(loaded, options)


def __getattr__(name: str) -> Any:
    if name == "STUDIES":  # study name -> (run function, options dataclass)
        return {study: load_study(study) for study in REGISTRY}
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "REGISTRY",
    "STUDIES",
    "STUDY_NAMES",
    "load_study",
    "BudgetOptions",
    "run_budget_study",
    "CorrelationOptions",
    "FamilyOptions",
    "run_correlation_study",
    "run_family_study",
    "LatentClassesOptions",
    "TemperatureOptions",
    "Theorem1Options",
    "anchor_limit_terms",
    "run_latent_classes_study",
    "SummaryOptions",
    "run_summary_study",
    "run_temperature_study",
    "run_theorem1_study",
]
