"""The uniformity loss of one batch (no queue, no shard) as one fused node: see :mod:`..fused`.

The tiled path (:func:`~aligniform.losses.uniform.uniform_loss` through
:func:`~aligniform.losses.engine.pairwise_logsumexp`) builds the augmented rows ``[2t·x, -t||x||², -t]`` and columns
``[x, 1, ||x||²]``, takes the engine's "upper" tile ``rows @ columns[1:]ᵀ`` clamped at 0, the log of each row's sum
of exps, ``torch.logsumexp`` of all rows but the last, and subtracts ``log(pair count)``. :class:`FusedUniformity`
does those operations in that order, and its backward is what autograd computes through that graph: the log-sum-exp
and slice nodes, the engine's one-tile backward, then the concatenations, products, powers and sums of the
augmentation, with x's four gradients (columns, columns' squared norms, rows' squared norms, rows' ``2t·x``) and
t's three (its ``-t`` column, its ``-t||x||²`` column, its ``2t·x`` block) added in the order autograd's engine adds
them. Values and gradients are bitwise those of the tiled path (``tests/losses/test_fused_uniform.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from ..logsumexp import _unshifted_is_safe, tile_shape


def augmented(x: torch.Tensor, t: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~aligniform.losses.engine.as_rows` and :func:`~aligniform.losses.engine.as_columns` of x, bitwise.

    Written into two buffers instead of through two concatenations; each entry is the same single operation.
    """
    n, d = x.shape
    squared = x.pow(2).sum(1, keepdim=True)
    rows, columns = x.new_empty(n, d + 2), x.new_empty(n, d + 2)
    torch.mul(x, 2 * t, out=rows[:, :d])
    negative = -t
    torch.mul(squared, negative, out=rows[:, d : d + 1])
    rows[:, d + 1].fill_(negative)
    columns[:, :d] = x
    columns[:, d].fill_(1.0)
    columns[:, d + 1 :] = squared
    return rows, columns


class FusedUniformity(torch.autograd.Function):
    """``log Σ_{i<j} exp(-t ||x_i - x_j||²) - log_count`` from the augmented ``rows`` and ``columns`` of x.

    ``rows`` and ``columns`` are :func:`augmented` of ``(x, t)``, computed by the caller without gradient (the
    dispatch needs them for the engine's safety test); the gradients go to ``x`` and ``t``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        t: float | torch.Tensor,
        rows: torch.Tensor,
        columns: torch.Tensor,
        log_count: float,
    ) -> torch.Tensor:
        # The engine's "upper" tile: rows 0..n-1 against columns 1..n-1, pair (i, j) kept where j > i. Its mask
        # (-inf below the diagonal, then exp) gives +0 there, as triu_ does after the exp.
        logits = rows @ columns[1:].T
        exp = logits.clamp_max_(0.0).exp_().triu_(0)
        row_out = exp.sum(1).log_()
        lse = row_out[:-1]  # the last row has no pair
        total = torch.logsumexp(lse, 0)
        tensor_t = [t] if isinstance(t, torch.Tensor) else []
        ctx.save_for_backward(x, rows, columns, exp, row_out, total, *tensor_t)
        ctx.t = None if tensor_t else t
        return total - log_count

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, rows, columns, exp, row_out, total, *rest = ctx.saved_tensors
        t = rest[0] if rest else ctx.t
        need_x, need_t = ctx.needs_input_grad[:2]
        n, d = x.shape
        # logsumexp's backward, then the slice's (0 for the last row), then the engine's softmax scale.
        lse = row_out[:-1]
        lse_grad = grad.unsqueeze(0) * (lse - total.unsqueeze(0)).exp()
        scale = row_out.new_zeros(n)
        torch.mul(lse_grad, torch.exp(-lse), out=scale[:-1])
        scale = scale[:, None]
        # The engine's one-tile backward: grad rows = a ⊙ (E c) (added to zeros), grad columns[1:] += Eᵀ (a ⊙ r).
        rows_grad = (scale * (exp @ columns[1:])).add_(0.0)
        grad_x = grad_t = None
        two_t, negative = 2 * t, -t
        if need_x:
            columns_grad = torch.zeros_like(columns)
            columns_grad[1:].addmm_(exp.T, scale * rows)
            # The four paths into x, in the order autograd's engine adds them: the columns' x block, the columns'
            # squared norms (pow's backward is grad · (2 · x¹)), the rows' squared norms, the rows' 2t·x.
            twice = 2.0 * x
            grad_x = columns_grad[:, :d] + columns_grad[:, d + 1 :] * twice
            grad_x += (rows_grad[:, d : d + 1] * negative) * twice
            grad_x += rows_grad[:, :d] * two_t
        if need_t:
            # t's three paths, each a product's reduced gradient through its negation or doubling, in the
            # engine's order: the -t column, the -t||x||² column, the 2t·x block.
            grad_t = -rows_grad[:, d + 1 :].contiguous().sum()
            grad_t = grad_t + -(rows_grad[:, d : d + 1] * columns[:, d + 1 :]).sum()
            grad_t = grad_t + (rows_grad[:, :d] * x).sum() * 2
        return grad_x, grad_t, None, None, None


def fused_uniformity(
    x: torch.Tensor, t: float | torch.Tensor, log_count: float, block_rows: int | None = None
) -> torch.Tensor | None:
    """``pairwise_logsumexp(x, t) - log_count`` through :class:`FusedUniformity` when it applies, else None.

    It applies when the engine would take its one-tile unshifted path: one tile (rows 0..n-1 against columns
    1..n-1), the unshifted exp safe on the augmented vectors, and some input needing gradient. A tensor ``t``
    must share x's dtype and device (otherwise its mixed-type arithmetic is left to the tiled path).
    """
    n = x.shape[0]
    if n < 2 or not torch.is_grad_enabled():
        return None
    t_grad = isinstance(t, torch.Tensor) and t.requires_grad
    if not (x.requires_grad or t_grad):
        return None
    if isinstance(t, torch.Tensor) and (t.dtype != x.dtype or t.device != x.device or t.dim() != 0):
        return None
    tile_rows, tile_columns = tile_shape(n, block_rows)
    if tile_rows < n or tile_columns < n - 1:
        return None
    with torch.no_grad():
        rows, columns = augmented(x, t)
        if not _unshifted_is_safe(rows, columns):
            return None
    return FusedUniformity.apply(x, t, rows, columns, log_count)


__all__ = ["FusedUniformity", "augmented", "fused_uniformity"]
