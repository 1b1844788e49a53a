"""SigLIP's sigmoid loss as one fused node: see :mod:`..fused`."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ..softplus import _SOFTPLUS_THRESHOLD
from .common import one_tile, wants_grad


def _augmented(x: torch.Tensor, scale: float | torch.Tensor, bias: float | torch.Tensor) -> torch.Tensor:
    """[scale·x_i, bias] for every row: the values of :func:`~aligniform.losses.sigmoid_loss`'s concatenation.

    Its bias column is ``ones · bias``, i.e. the bias in x's dtype (1 · b is b), built here without the product.
    """
    n = x.shape[0]
    column = x.new_full((n, 1), bias) if not isinstance(bias, torch.Tensor) else bias.to(x).expand(n, 1)
    return torch.cat([x * scale, column], 1)


def _signed_logits(rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """−z_ij·l_ij: the engine's one tile (its GEMM, then the positives' signs flipped)."""
    signed = torch.mm(rows, columns.T)
    signed.diagonal().neg_()
    return signed


class FusedSigmoid(torch.autograd.Function):
    """SigLIP's loss ``Σ_ij softplus(−z_ij (scale·x_iᵀy_j + bias)) / N`` in one tile, bitwise the tiled path's.

    The tiled path (:func:`~aligniform.losses.sigmoid_loss` through
    :func:`~aligniform.losses.engine.tiled_softplus_sum`) folds the scale and bias into augmented vectors
    ``[scale·x_i, bias]·[y_j, 1]``; this does the same GEMM, softplus and sum, keeps the signed logits and
    in backward turns them into the sigmoid weights in place, as the engine's kept-tile backward does, then
    differentiates the concatenations and products around the engine as autograd would.
    """

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, y: torch.Tensor, scale: float | torch.Tensor, bias: float | torch.Tensor
    ) -> torch.Tensor:
        rows = _augmented(x, scale, bias)
        columns = torch.cat([y, y.new_ones((y.shape[0], 1))], 1)
        signed = _signed_logits(rows, columns)
        # The engine adds this sum to a zero; softplus is >= +0 (or NaN), so 0 + sum is the sum itself.
        total = F.softplus(signed, threshold=_SOFTPLUS_THRESHOLD.get(rows.dtype, 20.0)).sum()
        ctx.save_for_backward(x, rows, columns)
        ctx.scale, ctx.kept = scale, signed
        return total / x.shape[0]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, rows, columns = ctx.saved_tensors
        need_x, need_y, need_scale, need_bias = ctx.needs_input_grad[:4]
        n, d = x.shape
        kept, ctx.kept = ctx.kept, None  # a second backward (retain_graph) recomputes the tile
        # The division by N, then the engine's weights: σ(−z l), its sign flipped on the positives, times grad.
        weights = (kept if kept is not None else _signed_logits(rows, columns)).sigmoid_()
        weights.diagonal().neg_()
        weights.mul_(grad / n)
        grad_x = grad_y = grad_scale = grad_bias = None
        if need_x or need_scale or need_bias:
            grad_rows = torch.mm(weights, columns)
            # The concatenation's slices, then the products x·scale and ones·bias; a 0-dim scale's or bias's
            # gradient is left unreduced: autograd sums it to the input's shape as it does for the tiled path.
            scaled = grad_rows[:, :d]
            if need_x:
                grad_x = scaled * ctx.scale
            if need_scale:
                grad_scale = scaled * x
            if need_bias:
                grad_bias = grad_rows[:, d:].contiguous()  # ones · bias: grad · 1, the gradient itself
        if need_y:
            grad_y = torch.mm(weights.T, rows)[:, :d]
        return grad_x, grad_y, grad_scale, grad_bias


def fused_sigmoid(
    x: torch.Tensor, y: torch.Tensor, scale: float | torch.Tensor, bias: float | torch.Tensor
) -> torch.Tensor | None:
    """SigLIP's in-batch loss through :class:`FusedSigmoid` when its logits are one tile and need grad, else None."""
    if not one_tile(x.shape[0], y.shape[0]):
        return None
    if not wants_grad(x, y, scale, bias):
        return None
    loss: torch.Tensor = FusedSigmoid.apply(x, y, scale, bias)
    return loss
