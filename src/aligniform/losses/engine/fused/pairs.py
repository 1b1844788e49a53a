"""The Simple loss (Wang & Liu) of one in-batch symmetric batch as one fused node: see :mod:`..fused`.

:func:`~aligniform.losses.simple.simple_loss` without queue, shard or hardness computes, for each direction
(x against y, then y against x), ``positive = (anchors * others).sum(1)``, ``negatives = anchors @ Σ others -
positive`` and ``lam * negatives - positive``, and takes the mean of both directions' terms. Its gradients are
those of an O(N·d) graph of about twenty nodes; :class:`FusedSimple` does the same forward operations (the two
directions' positives are the same products, computed once) and writes out the backward autograd would compute.
Because the mean's gradient is one value for every term, each node's per-row gradient is a constant vector, so
most of the backward is scalar arithmetic; every rounding step is the one autograd performs, and x's and y's four
contributions are added in the order its engine adds them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .common import wants_grad


class FusedSimple(torch.autograd.Function):
    """``mean(cat([lam·(x @ Σy - p) - p, lam·(y @ Σx - p) - p]))`` with ``p = (x * y).sum(1)``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
        x_sum, y_sum = x.sum(0), y.sum(0)
        positive = (x * y).sum(1)
        x_terms = lam * (x @ y_sum - positive) - positive
        y_terms = lam * (y @ x_sum - positive) - positive
        ctx.save_for_backward(x, y, x_sum, y_sum)
        ctx.lam = lam
        return torch.cat([x_terms, y_terms]).mean()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, y, x_sum, y_sum = ctx.saved_tensors
        n = x.shape[0]
        # mean -> cat: every term's gradient is grad / 2n; lam's product gives the negatives' (the product with
        # the other view's sum), the two subtractions the positive's: (-term) + (-negative).
        term = grad / (2 * n)
        negative = term * ctx.lam
        positive = -term + -negative
        negatives = negative.expand(n).contiguous()
        # Each view's gradient: the other direction's positive (·other), its own negatives' outer product with
        # the other view's sum, its own direction's positive, then the sum's expansion (the other direction's
        # matrix-vector product, transposed).
        grad_x = grad_y = None
        if ctx.needs_input_grad[0]:
            along = positive * y
            grad_x = along + negative * y_sum
            grad_x += along
            grad_x += torch.mv(y.T, negatives)
        if ctx.needs_input_grad[1]:
            along = positive * x
            grad_y = (negative * x_sum) + along
            grad_y += along
            grad_y += torch.mv(x.T, negatives)
        return grad_x, grad_y, None


def fused_simple(x: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor | None:
    """The symmetric in-batch Simple loss through :class:`FusedSimple` when some input needs gradient, else None."""
    if not wants_grad(x, y):
        return None
    return FusedSimple.apply(x, y, lam)
