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

import math
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from ..logsumexp import UNSHIFTED_LIMIT, _unshifted_is_safe, tile_shape
from .common import wants_grad


def augmented(x: torch.Tensor, t: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`~aligniform.losses.engine.as_rows`, :func:`~aligniform.losses.engine.as_columns` and ``||x||²``, bitwise.

    The squared norms are computed once (as_rows and as_columns each compute the same values); each entry of the
    rows and columns is the same single operation as theirs.
    """
    squared = x.pow(2).sum(1, keepdim=True)
    negative = -t
    tail = negative.expand(x.shape[0], 1) if isinstance(negative, torch.Tensor) else torch.full_like(squared, negative)
    rows = torch.cat([x * (2 * t), squared * negative, tail], 1)
    columns = torch.cat([x, torch.ones_like(squared), squared], 1)
    return rows, columns, squared


def safe_from_squared_norms(
    rows: torch.Tensor, columns: torch.Tensor, squared: torch.Tensor, t: float | torch.Tensor
) -> bool:
    """The engine's ``_unshifted_is_safe(rows, columns)``, mostly from the largest squared norm alone.

    A row's norm is ``t·sqrt(4s + s² + 1)`` and a column's ``sqrt(s + 1 + s²)`` for its squared norm s, both
    growing with s, so their product at the largest s is the engine's bound up to rounding: relative
    ``(d + 10)·eps`` at most (each norm sums d + 2 rounded squares), an eighth of the margin used here. Within that
    margin of the limit the engine's own test decides (and for very wide features, always).
    """
    limit = UNSHIFTED_LIMIT.get(rows.dtype)
    if limit is None:
        return False
    margin = 8 * (rows.shape[1] + 10) * torch.finfo(rows.dtype).eps
    if margin < 1e-2:
        if isinstance(t, torch.Tensor):  # one device sync for both numbers
            s, scale = torch.stack([squared.amax(), t.detach().abs()]).tolist()
        else:
            s, scale = float(squared.amax()), abs(t)
        bound = scale * math.sqrt((4 * s + s * s + 1) * (s + 1 + s * s))
        if bound <= limit * (1 - margin):
            return True
        if bound >= limit * (1 + margin):
            return False
    return _unshifted_is_safe(rows, columns)


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
        candidates = columns[1:]
        logits = rows @ candidates.T
        exp = logits.clamp_max_(0.0).exp_().triu_(0)
        row_out = exp.sum(1).log_()
        lse = row_out[:-1]  # the last row has no pair
        total = torch.logsumexp(lse, 0)
        tensor_t = [t] if isinstance(t, torch.Tensor) else []
        ctx.save_for_backward(x, rows, columns, candidates, exp, row_out, total, *tensor_t)
        ctx.t = None if tensor_t else t
        return total - log_count

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, rows, columns, candidates, exp, row_out, total, *rest = ctx.saved_tensors
        t = rest[0] if rest else ctx.t
        need_x, need_t = ctx.needs_input_grad[:2]
        n, d = x.shape
        # logsumexp's backward, then the slice's (0 for the last row), then the engine's softmax scale.
        lse = row_out[:-1]
        lse_grad = grad * (lse - total).exp()
        scale = row_out.new_zeros(n, 1)
        torch.mul(lse_grad, torch.exp(-lse), out=scale[:-1, 0])
        # The engine's one-tile backward: grad rows = a ⊙ (E c) (added to zeros), grad columns[1:] += Eᵀ (a ⊙ r).
        rows_grad = torch.mul(scale, exp @ candidates).add_(0.0)
        rows_x, rows_squared, rows_tail = rows_grad.split([d, 1, 1], 1)
        grad_x = grad_t = None
        two_t, negative = 2 * t, -t
        if need_x:
            columns_grad = torch.zeros_like(rows)
            columns_grad[1:].addmm_(exp.T, scale * rows)
            columns_x, _, columns_squared = columns_grad.split([d, 1, 1], 1)
            # The four paths into x, in the order autograd's engine adds them: the columns' x block, the columns'
            # squared norms (pow's backward is grad · (2 · x¹)), the rows' squared norms, the rows' 2t·x.
            twice = 2.0 * x
            grad_x = torch.mul(columns_squared, twice).add_(columns_x)
            grad_x += twice.mul_(rows_squared * negative)
            grad_x += torch.mul(rows_x, two_t, out=twice)
        if need_t:
            # t's three paths, each a product's reduced gradient through its negation or doubling, in the
            # engine's order: the -t column, the -t||x||² column, the 2t·x block.
            grad_t = -rows_tail.contiguous().sum()
            grad_t = grad_t + -(rows_squared * columns[:, d + 1 :]).sum()
            grad_t = grad_t + (rows_x * x).sum() * 2
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
    if n < 2 or not wants_grad(x, t):
        return None
    if isinstance(t, torch.Tensor) and (t.dtype != x.dtype or t.device != x.device or t.dim() != 0):
        return None
    tile_rows, tile_columns = tile_shape(n, block_rows)
    if tile_rows < n or tile_columns < n - 1:
        return None
    with torch.no_grad():
        rows, columns, squared = augmented(x, t)
        if not safe_from_squared_norms(rows, columns, squared, t):
            return None
    return FusedUniformity.apply(x, t, rows, columns, log_count)


__all__ = ["FusedUniformity", "augmented", "fused_uniformity", "safe_from_squared_norms"]
