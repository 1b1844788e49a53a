"""What every fused form shares: when a batch is one tile, and the gradients of the operations around the engine."""

from __future__ import annotations

import math

import torch

from ..logsumexp import tile_shape


def one_tile(n_rows: int, n_columns: int) -> bool:
    """Whether the engine covers an (n_rows × n_columns) logit matrix with a single tile."""
    rows, columns = tile_shape(n_columns)
    return n_rows <= rows and n_columns <= columns


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
