"""Training objectives written in the papers' notation, e.g. ``"0.98*align(alpha=2) + 0.96*uniform(t=2)"``."""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import nn

from .distributed import Shard, accepts_shard
from .losses import (
    AlignLoss,
    AsymptoticContrastiveLoss,
    ContrastiveLoss,
    DebiasedContrastiveLoss,
    DecoupledContrastiveLoss,
    HardContrastiveLoss,
    NTXentLoss,
    SigmoidLoss,
    SimpleLoss,
    SupervisedContrastiveLoss,
    UniformLoss,
)

REQUIRED = object()


@dataclass(frozen=True)
class TermKind:
    """A loss usable in a spec: its module, its parameters (in order) and their defaults."""

    module: type[nn.Module]
    params: dict = field(default_factory=dict)
    takes_queue: bool = True
    directional: bool = False  # has a one-directional (MoCo) form: queries against [own key, queue]
    takes_labels: bool = False  # needs the samples' class labels (supervised)
    moco_form: bool = True  # has a meaning with MoCo's queries and keys

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
    "nt_xent": TermKind(NTXentLoss, {"tau": 0.1}, takes_queue=False, moco_form=False),
    "supervised_contrastive": TermKind(
        SupervisedContrastiveLoss, {"tau": 0.1}, takes_queue=False, takes_labels=True, moco_form=False
    ),
    "decoupled_contrastive": TermKind(
        DecoupledContrastiveLoss, {"tau": 0.1, "weighted": False, "sigma": 0.5}, takes_queue=False, moco_form=False
    ),
    "debiased_contrastive": TermKind(
        DebiasedContrastiveLoss, {"tau": 0.5, "tau_plus": 0.1, "beta": 0.0}, takes_queue=False, moco_form=False
    ),
    "sigmoid": TermKind(SigmoidLoss, {"scale": 10.0, "bias": -10.0}, takes_queue=False, moco_form=False),
}


# Arguments that may be learnt, ``name=learn(init)``, and how each is stored as a parameter: a temperature
# as CLIP's logit scale log(1/tau), another positive scale as its log, a bias as itself.
LEARNABLE = {"tau": "inverse", "t": "log", "scale": "log", "bias": "raw"}


@dataclass(frozen=True)
class Learn:
    """A learnable argument of a term: ``learn(init)``, optionally clamped, ``learn(0.07, min=0.01)``.

    ``min``/``max`` bound the argument's value (not the stored parameter): CLIP's
    clamp of the logit scale at 100 is ``tau=learn(0.07, min=0.01)``.

    Examples:
        >>> str(Learn(0.07, min=0.01))
        'learn(0.07, min=0.01)'
    """

    init: float
    min: float | None = None
    max: float | None = None

    def __str__(self) -> str:
        bounds = [f"{name}={_format_value(value)}" for name, value in (("min", self.min), ("max", self.max)) if value]
        return f"learn({', '.join([_format_value(self.init), *bounds])})"


class LearnedValue(nn.Module):
    """The trainable parameter behind a :class:`Learn` argument; calling it gives the argument's current value.

    ``parameter`` holds ``log(1/tau)`` for a temperature (CLIP's ``logit_scale``),
    ``log(value)`` for another scale, and the value itself for a bias; the value
    is clamped to ``[min, max]`` (no gradient beyond the bounds).

    Examples:
        >>> value = LearnedValue("tau", Learn(0.07))
        >>> round(value.parameter.item(), 4), round(value().item(), 4)   # log(1/0.07), 0.07
        (2.6593, 0.07)
    """

    def __init__(self, name: str, spec: Learn) -> None:
        super().__init__()
        self.kind, self.spec = LEARNABLE[name], spec
        if self.kind != "raw" and not spec.init > 0:
            raise ValueError(f"{name}=learn(...) must start at a positive value, got {_format_value(spec.init)}")
        if spec.min is not None and spec.max is not None and not spec.min < spec.max:
            raise ValueError(f"{name}=learn(...): min must be below max, got {spec}")
        if (spec.min is not None and spec.init < spec.min) or (spec.max is not None and spec.init > spec.max):
            raise ValueError(f"{name}=learn(...): the initial value must lie within min and max, got {spec}")
        # Evaluated lazily: a bias may start at a negative value (SigLIP's -10), whose log does not exist.
        stored = {"inverse": lambda v: -math.log(v), "log": math.log}.get(self.kind, float)(spec.init)
        self.parameter = nn.Parameter(torch.tensor(float(stored)))

    def forward(self) -> torch.Tensor:
        # A bias is a copy of its parameter, not the Parameter itself (setting that on a loss would register it).
        value = {"inverse": lambda p: torch.exp(-p), "log": torch.exp}.get(self.kind, torch.clone)(self.parameter)
        if self.spec.min is not None or self.spec.max is not None:
            value = value.clamp(self.spec.min, self.spec.max)
        return value


def _format_value(value: float | bool | None | Learn) -> str:
    if isinstance(value, Learn):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _parse_learn(text: str, where: str) -> Learn:
    """``learn(init[, min=..][, max=..])``, already stripped of ``learn(`` and ``)``."""
    items = [item.strip() for item in text.split(",")]
    if not items[0] or "=" in items[0]:
        raise ValueError(f"{where}: learn(...) needs an initial value first, e.g. learn(0.07), got learn({text})")
    bounds: dict[str, float] = {}
    for item in items[1:]:
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or key not in ("min", "max") or key in bounds:
            raise ValueError(f"{where}: learn(init, min=..., max=...) takes min and max once each, got {item!r}")
        bounds[key] = _parse_number(value, where)
    return Learn(_parse_number(items[0], where), bounds.get("min"), bounds.get("max"))


def _parse_number(text: str, where: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{where}: expected a number, got {text.strip()!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{where}: expected a finite number, got {text.strip()!r}")
    return number


def _parse_value(text: str, where: str) -> float | bool | None | Learn:
    lowered = text.strip().lower()
    if lowered.startswith("learn(") and lowered.endswith(")"):
        return _parse_learn(lowered[len("learn(") : -1], where)
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
    if isinstance(value, Learn):
        if parameter not in LEARNABLE:
            raise ValueError(
                f"{name}({parameter}=learn(...)): only {', '.join(LEARNABLE)} can be learnt, not {parameter}"
            )
        return
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

    def __init__(self, name: str, weight: float = 1.0, **arguments: float | bool | None | Learn) -> None:
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
        initial = {p: v.init if isinstance(v, Learn) else v for p, v in values.items()}
        try:
            self.loss = kind.module(**initial)
            self.learned = nn.ModuleDict({p: LearnedValue(p, v) for p, v in values.items() if isinstance(v, Learn)})
        except ValueError as error:
            raise ValueError(f"in objective term {name}: {error}") from None
        self.name, self.weight, self.values, self.kind = name, float(weight), values, kind
        self.shardable = accepts_shard(self.loss)

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        queue: torch.Tensor | None = None,
        moco: bool = False,
        labels: torch.Tensor | None = None,
        shard: Shard | None = None,
    ) -> torch.Tensor:
        """The term's unweighted loss; with a ``shard``, x, y (and labels) are this rank's rows.

        A loss without a sharded form gets the gathered global batch instead (every rank computes all of it).
        Learnable arguments are handed to the loss as their current values (with gradient) for this call.
        """
        if shard is not None and not self.shardable:
            x, y = shard.gather(x), shard.gather(y)
            labels = None if labels is None else shard.gather(labels)
            shard = None
        if not self.learned:
            return self._loss(x, y, queue, moco, labels, shard)
        for parameter, learned in self.learned.items():
            setattr(self.loss, parameter, learned())
        try:
            return self._loss(x, y, queue, moco, labels, shard)
        finally:  # the loss module keeps plain numbers between calls (no graph held, copyable)
            for parameter in self.learned:
                setattr(self.loss, parameter, self.values[parameter].init)

    def _loss(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        queue: torch.Tensor | None,
        moco: bool,
        labels: torch.Tensor | None,
        shard: Shard | None,
    ) -> torch.Tensor:
        sharded = {} if shard is None else {"shard": shard}
        if moco and not self.kind.moco_form:
            raise ValueError(f"{self.name} has no MoCo form (queries against momentum keys); train it without `moco`")
        if self.kind.takes_labels:
            if labels is None:
                raise ValueError(f"{self.name} is supervised: it needs the batch's labels, objective(x, y, labels=...)")
            return self.loss(x, y, labels, **sharded)
        if moco and self.name == "uniform":
            # The keys carry no gradient: queries only (the authors' MoCo form).
            return self.loss(x, queue=queue, **sharded)
        if moco and self.kind.directional:
            return self.loss(x, y, queue=queue, symmetric=False, **sharded)
        if self.kind.takes_queue:
            return self.loss(x, y, queue=queue, **sharded)
        return self.loss(x, y, **sharded)

    def __str__(self) -> str:
        first = next(iter(self.kind.params), None)
        shown = [f"{p}={_format_value(v)}" for p, v in self.values.items() if p == first or v != self.kind.params[p]]
        text = f"{self.name}({', '.join(shown)})"
        return text if self.weight == 1 else f"{_format_value(self.weight)}*{text}"


_TERM = re.compile(
    r"\s*(?:(?P<weight>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*\*\s*)?"
    r"(?P<name>[A-Za-z_][A-Za-z_0-9]*)\s*(?:\((?P<args>(?:[^()]|\([^()]*\))*)\))?\s*$"
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
    for item in filter(str.strip, _split_outside_parentheses(match["args"] or "", ",")):
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

    @property
    def uses_labels(self) -> bool:
        """Whether any term is supervised (needs the batch's class labels)."""
        return any(cast(Term, term).kind.takes_labels for term in self.terms)

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        queue: torch.Tensor | None = None,
        moco: bool = False,
        labels: torch.Tensor | None = None,
        shard: Shard | None = None,
    ) -> torch.Tensor:
        """The weighted sum for views ``(x, y)``.

        With ``moco=True``, x are the queries (with gradient) and y the momentum
        encoder's keys (without): ``uniform`` is taken over the queries only
        (query-to-queue pairs, plus query pairs when ``intra_batch``) and the
        contrastive-family terms are MoCo's one-directional form, queries
        against [own key, queue], as in Wang & Isola's MoCo experiments.
        ``labels`` (N,) are the samples' classes, for supervised terms
        (``supervised_contrastive``); other terms ignore them.
        With a ``shard`` (:func:`aligniform.distributed.global_loss` passes one
        under ``torchrun``), x, y and labels are this rank's rows and each term
        computes its share of the global batch's loss; the result is the global
        loss, the same on every rank.
        """
        values = [term(x, y, queue, moco, labels, shard) for term in self.terms]
        # Kept as tensors: converting to floats here would synchronise a GPU every step.
        self._last_values = {key: value.detach() for key, value in zip(self.keys, values)}
        return sum(term.weight * value for term, value in zip(self.terms, values))

    @property
    def last_terms(self) -> dict[str, float]:
        """Unweighted value of each term from the last call, as Python floats."""
        return {key: float(value) for key, value in self._last_values.items()}

    def learned_values(self) -> dict[str, float]:
        """The current value of every learnt argument, keyed ``<term key>_<argument>``.

        Examples:
            >>> Objective.parse("contrastive(tau=learn(0.07)) + uniform(t=2)").learned_values()
            {'contrastive_tau': 0.07}
        """
        with torch.no_grad():
            return {
                f"{key}_{argument}": float(f"{float(learned()):.6g}")  # float32 precision, for the logs
                for key, term in zip(self.keys, self.terms)
                for argument, learned in cast(Term, term).learned.items()
            }

    def __str__(self) -> str:
        return " + ".join(str(term) for term in self.terms)

    def extra_repr(self) -> str:
        return repr(str(self))


def _split_outside_parentheses(text: str, separator: str) -> list[str]:
    """``text.split(separator)``, except inside parentheses (``learn(0.07, min=0.01)`` is one argument)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if char == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


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
