"""Training objectives written in the papers' notation, e.g. ``"0.98*align(alpha=2) + 0.96*uniform(t=2)"``."""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import nn

from .losses import (
    AlignLoss,
    AsymptoticContrastiveLoss,
    ContrastiveLoss,
    HardContrastiveLoss,
    SimpleLoss,
    UniformLoss,
)

REQUIRED = object()


@dataclass(frozen=True)
class TermKind:
    """A loss usable in a spec: its module, its parameters (in order) and their defaults."""

    module: type[nn.Module]
    params: dict = field(default_factory=dict)
    takes_queue: bool = True
    directional: bool = False  # has a one-directional (MoCo) form: queries against [keys, queue]

    def signature(self, name: str) -> str:
        shown = [p if d is REQUIRED else f"{p}={_format_value(d)}" for p, d in self.params.items()]
        return f"{name}({', '.join(shown)})"


TERMS: dict[str, TermKind] = {
    "align": TermKind(AlignLoss, {"alpha": 2.0}, takes_queue=False),
    "uniform": TermKind(UniformLoss, {"t": 2.0, "intra_batch": True}),
    "contrastive": TermKind(ContrastiveLoss, {"tau": 0.1}, directional=True),
    "hard_contrastive": TermKind(HardContrastiveLoss, {"tau": REQUIRED, "alpha": REQUIRED}, directional=True),
    "simple": TermKind(SimpleLoss, {"lam": REQUIRED, "hard_alpha": None}, directional=True),
    "asymptotic_contrastive": TermKind(AsymptoticContrastiveLoss, {"tau": REQUIRED}, takes_queue=False),
}


def _format_value(value: float | bool | None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _parse_value(text: str, where: str) -> float | bool | None:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return float(lowered)
    except ValueError:
        raise ValueError(f"{where}: expected a number, true/false or none, got {text.strip()!r}") from None


def _valid_terms() -> str:
    return ", ".join(kind.signature(name) for name, kind in TERMS.items())


def _check_argument_type(name: str, parameter: str, value: object, kind: TermKind) -> None:
    """A switch (a parameter whose default is true/false) takes true/false; every other parameter a number.

    The values themselves (positive, in range) are the loss's to check; a tensor is left for it too.
    """
    default = kind.params[parameter]
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name}({parameter}=...) must be true or false, got {_format_argument(value)}")
    elif value is None:
        if default is not None:
            raise ValueError(f"{name}({parameter}=...) must be a number, got none")
    elif isinstance(value, bool) or not isinstance(value, (numbers.Real, torch.Tensor)):
        raise ValueError(f"{name}({parameter}=...) must be a number, got {_format_argument(value)}")


def _format_argument(value: object) -> str:
    return _format_value(value) if isinstance(value, (bool, int, float)) or value is None else repr(value)


class Term(nn.Module):
    """One weighted loss of an :class:`Objective`."""

    def __init__(self, name: str, weight: float = 1.0, **arguments: float | bool | None) -> None:
        super().__init__()
        if name not in TERMS:
            raise ValueError(f"unknown objective term {name!r}; valid terms: {_valid_terms()}")
        kind = TERMS[name]
        unknown = sorted(set(arguments) - set(kind.params))
        if unknown:
            raise ValueError(f"unknown argument(s) {', '.join(unknown)} for {name}; valid: {kind.signature(name)}")
        values = {p: arguments.get(p, default) for p, default in kind.params.items()}
        missing = [p for p, v in values.items() if v is REQUIRED]
        if missing:
            raise ValueError(f"{name} needs argument(s) {', '.join(missing)}: {kind.signature(name)}")
        for parameter, value in arguments.items():
            _check_argument_type(name, parameter, value, kind)
        if isinstance(weight, bool) or not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight > 0):
            raise ValueError(f"the weight of {name} must be a positive number, got {weight!r}")
        try:
            self.loss = kind.module(**values)
        except ValueError as error:
            raise ValueError(f"in objective term {name}: {error}") from None
        self.name, self.weight, self.values, self.kind = name, float(weight), values, kind

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, queue: torch.Tensor | None = None, moco: bool = False
    ) -> torch.Tensor:
        if moco and self.name == "uniform":
            return self.loss(x, queue=queue)  # the keys carry no gradient: queries only (the authors' MoCo form)
        if moco and self.kind.directional:
            return self.loss(x, y, queue=queue, symmetric=False)
        if self.kind.takes_queue:
            return self.loss(x, y, queue=queue)
        return self.loss(x, y)

    def __str__(self) -> str:
        first = next(iter(self.kind.params), None)
        shown = [f"{p}={_format_value(v)}" for p, v in self.values.items() if p == first or v != self.kind.params[p]]
        text = f"{self.name}({', '.join(shown)})"
        return text if self.weight == 1 else f"{_format_value(self.weight)}*{text}"


_TERM = re.compile(
    r"\s*(?:(?P<weight>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*\*\s*)?"
    r"(?P<name>[A-Za-z_][A-Za-z_0-9]*)\s*(?:\((?P<args>[^()]*)\))?\s*$"
)


def _parse_term(text: str) -> Term:
    match = _TERM.match(text)
    if not match:
        raise ValueError(
            f"cannot parse objective term {text.strip()!r}; expected [weight*]name(arg=value, ...), "
            f"e.g. 0.98*align(alpha=2). Valid terms: {_valid_terms()}"
        )
    name = match["name"]
    arguments = {}
    for item in filter(str.strip, (match["args"] or "").split(",")):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"in {text.strip()!r}: arguments are written name=value, got {item.strip()!r}")
        if key in arguments:
            raise ValueError(f"in {text.strip()!r}: argument {key} of {name} is given twice")
        arguments[key] = _parse_value(value, f"{name}({key}=...)")
    weight = float(match["weight"]) if match["weight"] else 1.0
    return Term(name, weight, **arguments)


class Objective(nn.Module):
    """A weighted sum of losses, called with two views ``(x, y)`` (and an optional queue).

    Build one from the papers' notation with :meth:`parse`. A ``uniform`` term is
    the mean of the two views' uniformity, as the paper trains. After each call,
    ``last_terms`` holds every term's unweighted value (Python floats), keyed by
    term name (``uniform_2`` for a repeated name).

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import Objective
        >>> objective = Objective.parse("0.98*align(alpha=2) + 0.96*uniform(t=2)")
        >>> x, y = F.normalize(torch.randn(2, 64, 16), dim=-1)
        >>> loss = objective(x, y)
        >>> sorted(objective.last_terms)
        ['align', 'uniform']
        >>> str(objective)
        '0.98*align(alpha=2) + 0.96*uniform(t=2)'
    """

    def __init__(self, terms: list[Term]) -> None:
        super().__init__()
        if not terms:
            raise ValueError(f"an objective needs at least one term; valid terms: {_valid_terms()}")
        self.terms = nn.ModuleList(terms)
        self.keys = self._unique_keys([term.name for term in terms])
        self._last_values: dict[str, torch.Tensor] = {}

    @staticmethod
    def _unique_keys(names: list[str]) -> list[str]:
        seen: dict[str, int] = {}
        keys = []
        for name in names:
            seen[name] = seen.get(name, 0) + 1
            keys.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
        return keys

    @classmethod
    def parse(cls, spec: str) -> Objective:
        """Build an objective from a spec such as ``"contrastive(tau=0.5) + uniform(t=2)"``.

        Raises:
            ValueError: for syntax errors, unknown terms or arguments (listing the
                valid ones), missing required arguments and invalid values.
        """
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(f"objective spec must be a non-empty string; valid terms: {_valid_terms()}")
        return cls([_parse_term(part) for part in _split_terms(spec)])

    @property
    def uses_queue(self) -> bool:
        """Whether any term can consume a MoCo queue."""
        return any(cast(Term, term).kind.takes_queue for term in self.terms)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, queue: torch.Tensor | None = None, moco: bool = False
    ) -> torch.Tensor:
        """The weighted sum for views ``(x, y)``.

        With ``moco=True``, x are the queries (with gradient) and y the momentum
        encoder's keys (without): ``uniform`` is taken over the queries only
        (query-to-queue pairs, plus query pairs when ``intra_batch``) and the
        contrastive-family terms are MoCo's one-directional form, queries
        against [keys, queue], as in Wang & Isola's MoCo experiments.
        """
        values = [term(x, y, queue, moco) for term in self.terms]
        # Kept as tensors: converting to floats here would synchronise a GPU every step.
        self._last_values = {key: value.detach() for key, value in zip(self.keys, values)}
        return sum(term.weight * value for term, value in zip(self.terms, values))

    @property
    def last_terms(self) -> dict[str, float]:
        """Unweighted value of each term from the last call, as Python floats."""
        return {key: float(value) for key, value in self._last_values.items()}

    def __str__(self) -> str:
        return " + ".join(str(term) for term in self.terms)

    def extra_repr(self) -> str:
        return repr(str(self))


def _split_terms(spec: str) -> list[str]:
    """Split on '+' outside parentheses (and not inside exponents such as 1e+3)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(spec):
        depth += char == "("
        depth -= char == ")"
        if depth < 0:
            raise ValueError(f"unbalanced ')' at position {i} of objective spec {spec!r}")
        if char == "+" and depth == 0 and not (i > 0 and spec[i - 1] in "eE" and spec[i - 2 : i - 1].isdigit()):
            parts.append(spec[start:i])
            start = i + 1
    if depth != 0:
        raise ValueError(f"unbalanced '(' in objective spec {spec!r}")
    parts.append(spec[start:])
    if any(not part.strip() for part in parts):
        raise ValueError(f"empty term in objective spec {spec!r} (a stray '+'?)")
    return parts
