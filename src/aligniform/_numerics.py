"""Numerical policy shared by the losses (float32 or wider, outside autocast) and the one finite-number check."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeGuard, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16/bfloat16 features are upcast: a log-sum-exp over N² pairs needs float32."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def full_precision(loss_fn: F) -> F:
    """Run a loss with autocast disabled and half-precision inputs upcast to float32.

    Under bf16/fp16 autocast the encoder runs in low precision, but the pairwise
    similarities of the loss are exponentiated with temperatures as small as
    0.05: a bf16 logit error of 4e-3 would become a 8% error in exp(). The loss
    is a small part of the step's cost, so it always runs in float32.
    """

    @functools.wraps(loss_fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        # Meta tensors have no autocast state; the loss's input checks reject them with a clear error.
        device_types = {t.device.type for t in tensors if not t.is_meta} or {"cpu"}
        if not any(_autocast_on(device_type) for device_type in device_types):
            return loss_fn(*args, **kwargs)  # nothing to disable: skip the contexts (~20 µs of a small batch's step)
        with _autocast_disabled(device_types):
            return loss_fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _autocast_on(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (True where this torch cannot say: then it is disabled anyway)."""
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4 takes no device type
        if device_type == "cpu":
            return bool(torch.is_autocast_cpu_enabled())
        return bool(torch.is_autocast_enabled()) if device_type == "cuda" else True


class _autocast_disabled:
    def __init__(self, device_types: set[str]) -> None:
        self.contexts = [torch.autocast(device_type=t, enabled=False) for t in sorted(device_types)]

    def __enter__(self) -> None:
        for context in self.contexts:
            context.__enter__()

    def __exit__(self, *exc: object) -> None:
        for context in reversed(self.contexts):
            context.__exit__(*exc)


def upcast(*tensors: torch.Tensor | None) -> tuple[Any, ...]:  # each item keeps its argument's type
    """Cast half-precision tensors to float32; leave others (and None) alone."""
    # Only half precision is cast: a .to() that returns its input still costs a call (~4 µs a tensor per step).
    return tuple(t.float() if t is not None and t.dtype in (torch.float16, torch.bfloat16) else t for t in tensors)


def is_finite_number(value: object) -> TypeGuard[float]:
    """Whether ``value`` is an int or float (not a bool) with a finite value (JSON's null and NaN are not).

    Examples:
        >>> is_finite_number(0.5), is_finite_number(None), is_finite_number(float("nan")), is_finite_number(True)
        (True, False, False, False)
    """
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
