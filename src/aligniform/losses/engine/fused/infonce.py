"""Symmetric and one-directional InfoNCE (and its asymptotic form) as one fused node: see :mod:`..fused`."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from ..logsumexp import _unshifted_is_safe
from .common import division_backward, one_tile, softmax_scale


class FusedInfoNCE(torch.autograd.Function):
    """Mean InfoNCE of anchors ``x / tau`` against ``y`` (both directions if ``symmetric``), one tile.

    The terms are ``LSE_j (x_i/tau)ᵀy_j - (x_i/tau)ᵀy_i`` (and the column-wise ones), as
    :func:`aligniform.losses.candidates.softmax_terms` builds them with every in-batch candidate; with
    ``positive_in_denominator=False`` the diagonal is left out of the log-sum-exps (the asymptotic form).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        y: torch.Tensor,
        tau: float | torch.Tensor,
        anchors: torch.Tensor,
        symmetric: bool,
        positive_in_denominator: bool,
    ) -> torch.Tensor:
        positive = (anchors * y).sum(1)
        logits = anchors @ y.T
        if not positive_in_denominator:
            logits.diagonal(0).fill_(-math.inf)
        exp = logits.exp_()
        row_out = exp.sum(1).log_()
        column_out = exp.sum(0).log_() if symmetric else None
        parts = 2 if symmetric else 1
        lse = torch.cat([row_out, column_out]) if column_out is not None else torch.cat([row_out])
        loss = (lse - positive.repeat(parts)).mean()
        ctx.save_for_backward(x, y, anchors, exp, row_out, column_out if column_out is not None else row_out)
        ctx.tau, ctx.symmetric = tau, symmetric
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, y, anchors, exp, row_out, column_out = ctx.saved_tensors
        need_x, need_y, need_tau = ctx.needs_input_grad[:3]
        n, parts = x.shape[0], 2 if ctx.symmetric else 1
        # mean -> subtraction -> (concatenation, repeat): each term's gradient, and each positive's.
        term_grad = grad.expand(parts * n) / (parts * n)
        positive_grad = (-term_grad).view(parts, n).sum(0)
        a = softmax_scale(term_grad[:n], row_out)
        if ctx.symmetric:
            b = softmax_scale(term_grad[n:], column_out)
            weights = torch.mul(exp, a[:, None]).addcmul_(exp, b[:, None].T)
            grad_anchors = torch.zeros_like(anchors).addmm_(weights, y)
            grad_y = torch.zeros_like(y).addmm_(weights.T, anchors) if need_y else None
        else:
            grad_anchors = torch.zeros_like(anchors)
            grad_anchors += a[:, None] * (exp @ y)
            grad_y = torch.zeros_like(y).addmm_(exp.T, a[:, None] * anchors) if need_y else None
        # The positive logits' product (anchors * y).sum(1), differentiated.
        expanded = positive_grad[:, None].expand(n, x.shape[1])
        grad_anchors = grad_anchors + expanded * y
        if grad_y is not None:
            grad_y = grad_y + expanded * anchors
        grad_x, grad_tau = division_backward(grad_anchors, x, ctx.tau, need_x, need_tau)
        return grad_x, grad_y, grad_tau, None, None, None


def fused_infonce(
    x: torch.Tensor, y: torch.Tensor, tau: float | torch.Tensor, symmetric: bool, positive_in_denominator: bool
) -> torch.Tensor | None:
    """The mean InfoNCE through :class:`FusedInfoNCE` when it applies (one tile, unshifted exp safe), else None."""
    if not one_tile(x.shape[0], y.shape[0]):
        return None
    with torch.no_grad():
        anchors = x / tau
        if not _unshifted_is_safe(anchors, y):
            return None
    if not (x.requires_grad or y.requires_grad or (isinstance(tau, torch.Tensor) and tau.requires_grad)):
        return None
    return FusedInfoNCE.apply(x, y, tau, anchors, symmetric, positive_in_denominator)
