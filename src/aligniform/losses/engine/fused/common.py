"""What every fused form shares: when a batch is one tile, and the gradients of the operations around the engine."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..logsumexp import UNSHIFTED_LIMIT, _unshifted_is_safe, tile_shape

# The widest unit-norm tolerance of the input checks (8 epsilons of bfloat16): rows that passed them have norm
# below 1 + this, in any dtype.
_CHECKED_NORM_SLACK = 8 * torch.finfo(torch.bfloat16).eps


def one_tile(n_rows: int, n_columns: int) -> bool:
    """Whether the engine covers an (n_rows × n_columns) logit matrix with a single tile."""
    rows, columns = tile_shape(n_columns)
    return n_rows <= rows and n_columns <= columns


def wants_grad(*inputs: float | torch.Tensor) -> bool:
    """Whether a backward can come: grad mode on and some input a tensor that requires grad.

    Without one the fused forms decline: the tiled path gives the same values and keeps nothing for a backward.
    """
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in inputs)


def unshifted_is_safe(rows: Callable[[], torch.Tensor], columns: torch.Tensor, bound: float | None = None) -> bool:
    """The engine's unshifted-exp test of ``rows()`` against ``columns``, skipped when ``bound`` settles it.

    ``bound``: a known upper bound of the test's ``max|r_i| · max|c_j|`` (see :func:`checked_norm`); one clearly
    inside the limit needs no pass over the rows. Anything near the limit is tested exactly, as the engine does.
    """
    limit = UNSHIFTED_LIMIT.get(columns.dtype)
    if bound is not None and limit is not None and bound <= limit * 0.999:
        return True
    with torch.no_grad():
        return _unshifted_is_safe(rows(), columns)


def checked_norm(unit_rows: bool) -> float | None:
    """An upper bound of every row norm of features that passed the unit-norm input checks (None: not checked)."""
    return 1 + _CHECKED_NORM_SLACK if unit_rows else None


def softmax_scale(grad: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    # As the engine's: grad · exp(-LSE), 0 where nothing was summed.
    return torch.where(lse != -math.inf, grad * torch.exp(-lse), 0.0)


def division_backward(
    grad: torch.Tensor, x: torch.Tensor, tau: float | torch.Tensor, need_x: bool, need_tau: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of ``x / tau`` as autograd's division node computes them."""
    grad_x = grad / tau if need_x else None
    grad_tau = None
    if need_tau:
        assert isinstance(tau, torch.Tensor)
        grad_tau = (-grad * ((x / tau) / tau)).sum()
    return grad_x, grad_tau
