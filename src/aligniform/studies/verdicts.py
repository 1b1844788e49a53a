"""The words a study's verdict may take, and the summary table's reading of them.

Each study decides with its own rules and keeps its own words in its outputs (``holds`` for an ablation
prediction, ``reproduces`` for an interval on the paper's side of 0, ...); the summary table of
REPRODUCTION.md speaks of every claim in four words. :meth:`Verdict.in_summary` is the one translation
between the two. A :class:`Verdict` is a ``str``, so JSON and markdown show the word itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum


class Verdict(str, Enum):
    """A verdict word.

    Examples:
        >>> Verdict.HOLDS.in_summary() is Verdict.REPRODUCED, Verdict.HOLDS == "holds", f"{Verdict.NOT_SHOWN}"
        (True, True, 'not shown')
        >>> Verdict.in_summary_of("contradicted"), Verdict.in_summary_of("?")
        ('not reproduced', 'not evaluable')
    """

    # the studies' own words
    REPRODUCES = "reproduces"
    CONTRADICTED = "contradicted"
    NOT_SHOWN = "not shown"
    HOLDS = "holds"
    FAILS = "fails"
    # the summary table's words
    REPRODUCED = "reproduced"
    NOT_REPRODUCED = "not reproduced"
    # both
    PARTLY = "partly"
    NOT_EVALUABLE = "not evaluable"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:  # shown like the plain word it stands for, as in the studies' JSON
        return repr(self.value)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def in_summary(self) -> Verdict:
        """The summary table's word for this verdict."""
        return _IN_SUMMARY[self]

    @classmethod
    def in_summary_of(cls, word: object, unknown: Verdict | None = None) -> Verdict:
        """The summary table's word for a verdict read from a study's JSON; ``unknown`` (not evaluable) otherwise."""
        try:
            return cls(word).in_summary()
        except ValueError:
            return cls.NOT_EVALUABLE if unknown is None else unknown


_IN_SUMMARY = {
    Verdict.REPRODUCES: Verdict.REPRODUCED,
    Verdict.HOLDS: Verdict.REPRODUCED,
    Verdict.REPRODUCED: Verdict.REPRODUCED,
    Verdict.PARTLY: Verdict.PARTLY,
    Verdict.CONTRADICTED: Verdict.NOT_REPRODUCED,
    Verdict.NOT_SHOWN: Verdict.NOT_REPRODUCED,  # an interval that straddles 0 does not show the paper's sign
    Verdict.FAILS: Verdict.NOT_REPRODUCED,
    Verdict.NOT_REPRODUCED: Verdict.NOT_REPRODUCED,
    Verdict.NOT_EVALUABLE: Verdict.NOT_EVALUABLE,
}


def by_margin(difference: float | None, error: float | None) -> Verdict:
    """A difference of means over seeds in the claimed direction: more than 2 standard errors *reproduced*,
    within them *partly*, the other way *not reproduced*; without a standard error (one seed) *not evaluable*.

    Examples:
        >>> by_margin(1.0, 0.4), by_margin(0.5, 0.4), by_margin(-0.1, 0.4), by_margin(1.0, None)
        ('reproduced', 'partly', 'not reproduced', 'not evaluable')
    """
    if difference is None or error is None:
        return Verdict.NOT_EVALUABLE
    if difference > 2 * error:
        return Verdict.REPRODUCED
    return Verdict.PARTLY if difference > 0 else Verdict.NOT_REPRODUCED


def combine(verdicts: list[str]) -> Verdict:
    """One verdict from several datasets' or settings': all reproduced, some, none (missing ones ignored).

    Examples:
        >>> combine(["reproduced", "not reproduced"]), combine(["reproduced", "reproduced"]), combine([])
        ('partly', 'reproduced', 'not evaluable')
        >>> combine(["partly", "reproduced"])
        'partly'
    """
    known = [v for v in verdicts if v != Verdict.NOT_EVALUABLE]
    if not known:
        return Verdict.NOT_EVALUABLE
    if all(v == Verdict.REPRODUCED for v in known):
        return Verdict.REPRODUCED
    return Verdict.PARTLY if any(v in (Verdict.REPRODUCED, Verdict.PARTLY) for v in known) else Verdict.NOT_REPRODUCED


@dataclass(frozen=True)
class Claim:
    """One row of the summary table: the claim, where the paper makes it, what this repository measured, the verdict.

    Examples:
        >>> Claim("gap ~ c/M", "W&I Thm. 1", "slope −0.9", Verdict.REPRODUCED).as_row()["verdict"]
        'reproduced'
    """

    claim: str
    paper: str
    here: str
    verdict: Verdict

    def as_row(self) -> dict[str, str]:
        """The row as the summary's JSON and table hold it (plain strings)."""
        return {key: str(value) for key, value in asdict(self).items()}
