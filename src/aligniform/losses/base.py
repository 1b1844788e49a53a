"""What every loss module shares: its capabilities as an objective term, and learnt arguments.

A loss module subclasses :class:`Loss` and names its term, ``term = "contrastive"``; that registers it, and
:mod:`aligniform.objective` reads the term's parameters and defaults from the module's ``__init__`` signature
(every positional parameter but ``normalize``) and its capabilities from the class attributes below. Adding a
loss therefore touches its own file, its export in ``losses/__init__.py``, its test file and the docs.

A value is learnt one way: ``learn(init, min=..., max=...)`` as the argument, in a spec
(``contrastive(tau=learn(0.07))``) or in Python (``ContrastiveLoss(tau=learn(0.07))``); the module then holds the
parameter (:class:`LearnedValue`) and passes its current value to the loss on every call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from ..errors import OptionError

T = TypeVar("T")

# Arguments that may be learnt, ``name=learn(init)``, and how each is stored as a parameter: a temperature
# as CLIP's logit scale log(1/tau), another positive scale as its log, a bias as itself.
LEARNABLE = {"tau": "inverse", "t": "log", "scale": "log", "bias": "raw"}


def format_value(value: float | bool | None | Learn) -> str:
    """A value as a spec writes it: ``2`` for 2.0, ``true``, ``none``, ``learn(0.07)``."""
    if isinstance(value, Learn):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


@dataclass(frozen=True)
class Learn:
    """A learnable argument: ``learn(init)``, optionally bounded, ``learn(0.07, min=0.01)``.

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
        bounds = [f"{name}={format_value(value)}" for name, value in (("min", self.min), ("max", self.max)) if value]
        return f"learn({', '.join([format_value(self.init), *bounds])})"


def learn(init: float, min: float | None = None, max: float | None = None) -> Learn:  # noqa: A002 - the spec's names
    """A learnt argument for a loss module, as ``learn(...)`` in an objective spec.

    Examples:
        >>> from aligniform.losses import ContrastiveLoss, learn
        >>> loss = ContrastiveLoss(tau=learn(0.07, min=0.01))
        >>> [name for name, _ in loss.named_parameters()]
        ['learned.tau.parameter']
    """
    return Learn(float(init), min, max)


class LearnedValue(nn.Module):
    """The trainable parameter behind a :class:`Learn` argument; calling it gives the argument's current value.

    ``parameter`` holds ``log(1/tau)`` for a temperature (CLIP's ``logit_scale``),
    ``log(value)`` for another scale, and the value itself for a bias. ``min``/``max``
    clamp the parameter itself before each use, as CLIP clamps its logit scale after each
    step: the value stays within the bounds and the gradient still flows there, so an
    optimiser that carried the parameter to a bound can bring it back (clamping the value
    instead would zero its gradient beyond the bound and freeze it for good).

    Examples:
        >>> value = LearnedValue("tau", Learn(0.07))
        >>> round(value.parameter.item(), 4), round(value().item(), 4)   # log(1/0.07), 0.07
        (2.6593, 0.07)
    """

    def __init__(self, name: str, spec: Learn) -> None:
        super().__init__()
        if name not in LEARNABLE:
            raise OptionError(f"only {', '.join(LEARNABLE)} can be learnt, not `{name}`")
        self.kind, self.spec = LEARNABLE[name], spec
        if self.kind != "raw" and not spec.init > 0:
            raise OptionError(f"`{name}`=learn(...) must start at a positive value, got {format_value(spec.init)}")
        if spec.min is not None and spec.max is not None and not spec.min < spec.max:
            raise OptionError(f"`{name}`=learn(...): min must be below max, got {spec}")
        if (spec.min is not None and spec.init < spec.min) or (spec.max is not None and spec.init > spec.max):
            raise OptionError(f"`{name}`=learn(...): the initial value must lie within min and max, got {spec}")
        # Evaluated lazily: a bias may start at a negative value (SigLIP's -10), whose log does not exist.
        stored = {"inverse": lambda v: -math.log(v), "log": math.log}.get(self.kind, float)(spec.init)
        self.parameter = nn.Parameter(torch.tensor(float(stored)))

    def _parameter_bounds(self) -> tuple[float | None, float | None]:
        """The value's ``[min, max]`` as bounds on the stored parameter (a bound <= 0 on a scale bounds nothing)."""
        low, high = self.spec.min, self.spec.max
        if self.kind == "raw":
            return low, high
        log_low, log_high = (math.log(b) if b is not None and b > 0 else None for b in (low, high))
        if self.kind == "log":
            return log_low, log_high
        # parameter = log(1/value): an upper bound on the value is a lower bound on the parameter.
        return (None if log_high is None else -log_high), (None if log_low is None else -log_low)

    def forward(self) -> torch.Tensor:
        low, high = self._parameter_bounds()
        if low is not None or high is not None:
            with torch.no_grad():
                self.parameter.clamp_(low, high)
        # A bias is a copy of its parameter, not the Parameter itself (a loss may store what it is handed).
        return {"inverse": lambda p: torch.exp(-p), "log": torch.exp}.get(self.kind, torch.clone)(self.parameter)


class Loss(nn.Module):
    """Base of the loss modules: capabilities as an objective term, and learnt arguments.

    Class attributes (read by :class:`aligniform.Objective`):

    * ``term``: the loss's name in objective specs; setting it registers the class in :data:`REGISTRY`.
    * ``takes_queue``: ``forward`` accepts a MoCo ``queue`` of extra negatives.
    * ``directional``: has a one-directional (MoCo) form, ``forward(..., symmetric=False)``:
      queries against [own key, queue].
    * ``moco_keys``: in MoCo training the keys are passed too; ``False``: the queries only (uniformity).
    * ``takes_labels``: needs the samples' class labels, ``forward(x, y, labels)`` (supervised).
    * ``moco_form``: has a meaning with MoCo's queries and keys.
    * ``unit_features``: expects L2-normalised features (``False``: raw embeddings, e.g. Barlow Twins).
    """

    term: ClassVar[str] = ""
    takes_queue: ClassVar[bool] = False
    directional: ClassVar[bool] = False
    moco_keys: ClassVar[bool] = True
    takes_labels: ClassVar[bool] = False
    moco_form: ClassVar[bool] = True
    unit_features: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("term"):
            REGISTRY[cls.term] = cls

    def __init__(self) -> None:
        super().__init__()
        self.learned = nn.ModuleDict()

    def argument(self, name: str, value: Any, check: Callable[[Any], T]) -> T:
        """``check(value)``; for ``learn(init)``, also the parameter that learns it, starting at ``check(init)``.

        The module keeps the returned (initial) value as a plain attribute; :meth:`value` is what a call uses.
        """
        if isinstance(value, Learn):
            checked = check(value.init)
            self.learned[name] = LearnedValue(name, value)
            return checked
        return check(value)

    def __repr__(self) -> str:
        # The learnt arguments are shown by value in extra_repr, not as the submodules that hold them.
        return f"{self._get_name()}({self.extra_repr()})"

    def value(self, name: str) -> Any:
        """The argument's value for this call: the learnt one (with gradient) or the attribute."""
        return self.learned[name]() if name in self.learned else getattr(self, name)


REGISTRY: dict[str, type[Loss]] = {}
"""Every loss usable as an objective term, by its ``term`` name, in the order the classes were defined."""
