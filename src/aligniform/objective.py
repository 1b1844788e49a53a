"""Training objectives written in the papers' notation, e.g. ``"0.98*align(alpha=2) + 0.96*uniform(t=2)"``."""

from __future__ import annotations

import inspect
import numbers
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from ._numerics import is_finite_number
from .distributed import Shard, accepts_shard
from .losses import LEARNABLE, REGISTRY, Learn, LearnedValue, Loss, learn
from .losses.base import format_value as _format_value

__all__ = ["LEARNABLE", "TERMS", "Learn", "LearnedValue", "Objective", "Term", "TermKind", "learn"]

REQUIRED = object()


@dataclass(frozen=True)
class TermKind:
    """A loss usable in a spec: its module, its parameters (in order) and their defaults, its capabilities."""

    module: type[Loss]
    params: dict = field(default_factory=dict)

    @classmethod
    def of(cls, module: type[Loss]) -> TermKind:
        """Read from the module: every positional ``__init__`` parameter but ``normalize``, with its default."""
        params = {
            name: REQUIRED if parameter.default is inspect.Parameter.empty else parameter.default
            for name, parameter in list(inspect.signature(module.__init__).parameters.items())[1:]
            if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and name != "normalize"
        }
        return cls(module, params)

    def __getattr__(self, name: str) -> Any:
        # The capabilities (takes_queue, directional, takes_labels, moco_form, ...) are the module's class attributes.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.module, name)

    def signature(self, name: str) -> str:
        shown = [p if d is REQUIRED else f"{p}={_format_value(d)}" for p, d in self.params.items()]
        return f"{name}({', '.join(shown)})"


class _Terms(Mapping[str, TermKind]):
    """Every registered loss (:data:`aligniform.losses.REGISTRY`) as a :class:`TermKind`, read when asked."""

    def __getitem__(self, name: str) -> TermKind:
        return TermKind.of(REGISTRY[name])

    def __iter__(self) -> Iterator[str]:
        return iter(list(REGISTRY))

    def __len__(self) -> int:
        return len(REGISTRY)


TERMS: Mapping[str, TermKind] = _Terms()


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
    if not is_finite_number(number):
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
    """One weighted loss of an :class:`Objective`: the loss module, built once with its arguments.

    A learnt argument, ``learn(...)``, is the module's own parameter (:meth:`aligniform.losses.Loss.argument`),
    so the term hands the module nothing at call time.
    """

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
        if not (is_finite_number(weight) and weight > 0):
            raise ValueError(f"the weight of {name} must be a positive number, got {weight!r}")
        try:
            self.loss = kind.module(**values)
        except ValueError as error:
            raise ValueError(f"in objective term {name}: {error}") from None
        self.name, self.weight, self.values, self.kind = name, float(weight), values, kind
        self.shardable = accepts_shard(self.loss)
        self._register_load_state_dict_pre_hook(_learned_keys_of_old_checkpoints)

    @property
    def learned(self) -> nn.ModuleDict:
        """The term's learnt arguments, by name (the loss module holds them)."""
        return self.loss.learned

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
        """
        if shard is not None and not self.shardable:
            x, y = shard.gather(x), shard.gather(y)
            labels = None if labels is None else shard.gather(labels)
            shard = None
        sharded = {} if shard is None else {"shard": shard}
        kind = self.kind
        if moco and not kind.moco_form:
            raise ValueError(f"{self.name} has no MoCo form (queries against momentum keys); train it without `moco`")
        if kind.takes_labels:
            if labels is None:
                raise ValueError(f"{self.name} is supervised: it needs the batch's labels, objective(x, y, labels=...)")
            return self.loss(x, y, labels, **sharded)
        if moco and not kind.moco_keys:
            return self.loss(x, queue=queue, **sharded)
        if moco and kind.directional:
            return self.loss(x, y, queue=queue, symmetric=False, **sharded)
        if kind.takes_queue:
            return self.loss(x, y, queue=queue, **sharded)
        return self.loss(x, y, **sharded)

    def __str__(self) -> str:
        first = next(iter(self.kind.params), None)
        shown = [f"{p}={_format_value(v)}" for p, v in self.values.items() if p == first or v != self.kind.params[p]]
        text = f"{self.name}({', '.join(shown)})"
        return text if self.weight == 1 else f"{_format_value(self.weight)}*{text}"


def _learned_keys_of_old_checkpoints(state_dict: dict, prefix: str, *_: object) -> None:
    """Checkpoints written before the loss modules held their learnt arguments kept them under the term."""
    for key in [key for key in state_dict if key.startswith(f"{prefix}learned.")]:
        state_dict[f"{prefix}loss.{key[len(prefix) :]}"] = state_dict.pop(key)


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

    @property
    def unit_features(self) -> bool:
        """Whether every term expects L2-normalised features (``False`` with e.g. ``barlow_twins``).

        Examples:
            >>> Objective.parse("align + uniform").unit_features, Objective.parse("barlow_twins").unit_features
            (True, False)
        """
        return all(cast(Term, term).kind.unit_features for term in self.terms)

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
