"""Symmetric and one-directional InfoNCE (and its asymptotic form) as one fused node: see :mod:`..fused`."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .common import checked_norm, division_backward, one_tile, unshifted_is_safe, wants_grad


class FusedInfoNCE(torch.autograd.Function):
    """Mean InfoNCE of anchors ``x / tau`` against ``y`` (both directions if ``symmetric``), one tile.

    The terms are ``LSE_j (x_i/tau)ᵀy_j - (x_i/tau)ᵀy_i`` (and the column-wise ones), as
    :func:`aligniform.losses.candidates.softmax_terms` builds them with every in-batch candidate; with
    ``positive_in_denominator=False`` the diagonal is left out of the log-sum-exps (the asymptotic form).
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        y: torch.Tensor,
        tau: float | torch.Tensor,
        symmetric: bool,
        positive_in_denominator: bool,
    ) -> torch.Tensor:
        anchors = x / tau
        positive = (anchors * y).sum(1)
        logits = anchors @ y.T
        if not positive_in_denominator:
            logits.diagonal(0).fill_(-math.inf)
        exp = logits.exp_()
        row_out = exp.sum(1).log_()
        column_out = exp.sum(0).log_() if symmetric else None
        parts = 2 if symmetric else 1
        lse = torch.cat([row_out, column_out]) if column_out is not None else row_out
        # lse - positive.repeat(parts), elementwise the same, without repeat's copy (slow for short vectors).
        loss = (lse.view(parts, -1) - positive).mean()
        ctx.save_for_backward(x, y, anchors, exp, row_out, column_out if column_out is not None else row_out)
        ctx.tau, ctx.symmetric = tau, symmetric
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, y, anchors, exp, row_out, column_out = ctx.saved_tensors
        need_x, need_y, need_tau = ctx.needs_input_grad[:3]
        n, parts = x.shape[0], 2 if ctx.symmetric else 1
        # Autograd's chain mean -> subtraction -> (concatenation, repeat) gives every term the same gradient
        # grad / (parts·n), and every positive logit minus the sum of its parts' copies: exactly -parts times it.
        term_grad = grad / (parts * n)
        positive_grad = term_grad * -parts
        # The engine's softmax scales; its -inf guard never fires here (unshifted: every row sum is positive).
        a = term_grad * torch.exp(-row_out)
        if ctx.symmetric:
            b = term_grad * torch.exp(-column_out)
            weights = torch.mul(exp, a[:, None]).addcmul_(exp, b[None, :])
            grad_anchors = torch.mm(weights, y)
            grad_y = torch.mm(weights.T, anchors) if need_y else None
        else:
            grad_anchors = a[:, None] * (exp @ y)
            grad_y = torch.mm(exp.T, a[:, None] * anchors) if need_y else None
        # The positive logits' product (anchors * y).sum(1), differentiated.
        grad_anchors.add_(y * positive_grad)
        if grad_y is not None:
            grad_y.add_(anchors * positive_grad)
        grad_x, grad_tau = division_backward(grad_anchors, x, ctx.tau, need_x, need_tau)
        return grad_x, grad_y, grad_tau, None, None


def fused_infonce(
    x: torch.Tensor,
    y: torch.Tensor,
    tau: float | torch.Tensor,
    symmetric: bool,
    positive_in_denominator: bool,
    unit_rows: bool = False,
) -> torch.Tensor | None:
    """The mean InfoNCE through :class:`FusedInfoNCE` when it applies (one tile, unshifted exp safe), else None.

    ``unit_rows``: x and y passed the unit-norm input checks (then a moderate temperature needs no norm pass).
    """
    if not wants_grad(x, y, tau):
        return None
    if not one_tile(x.shape[0], y.shape[0]):
        return None
    norm = checked_norm(unit_rows)
    bound = norm * norm / tau if norm is not None and isinstance(tau, float) else None
    if not unshifted_is_safe(lambda: x / tau, y, bound):
        return None
    return FusedInfoNCE.apply(x, y, tau, symmetric, positive_in_denominator)
