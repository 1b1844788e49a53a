"""The losses over the 2N views as fused one-tile nodes (see :mod:`..fused`): NT-Xent (:mod:`.views_core`), and
SupCon, DCL and the debiased loss in their one-process, queue-free forms.

Each of the last three is its loss's whole tiled path at one tile: the other views' log-sum-exps of
:mod:`.views_core` (the three engine calls of ``other_views_logsumexp``) and the loss's own operations around them,
with every tensor's gradients added in the order autograd adds them (a use made after the views' calls contributes
before them, an earlier use after).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .common import division_backward
from .views_core import FusedNTXent, _in_order, _Views, _views, _views_backward, _views_inputs, fused_nt_xent

__all__ = [
    "FusedDebiased",
    "FusedDecoupled",
    "FusedNTXent",
    "FusedSupCon",
    "fused_debiased",
    "fused_decoupled",
    "fused_nt_xent",
    "fused_supcon",
]


class FusedDebiased(torch.autograd.Function):
    """The debiased loss (``beta = 0``, no queue or shard) at one tile, every operation of its tiled path in order.

    ``floor_offset`` is log M, ``delta_offset`` log(τ⁺·M) and ``prior_offset`` log(1 − τ⁺) (M = 2N − 2).
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        y: torch.Tensor,
        tau: float | torch.Tensor,
        x_anchors: torch.Tensor,
        y_anchors: torch.Tensor,
        floor_offset: float,
        delta_offset: float,
        prior_offset: float,
    ) -> torch.Tensor:
        similarity = (x * y).sum(1)
        positive = (similarity / tau).repeat(2)
        views = _views(x, y, x_anchors, y_anchors, positive=False)
        negative = views.lse
        floor = torch.zeros_like(positive) + (floor_offset - 1 / tau)
        delta = delta_offset + positive - negative
        valid = delta < 0
        delta = torch.where(valid, delta, torch.full_like(delta, -1.0))
        # log(1 − e^δ), both branches as debiased._log1mexp computes them.
        near = delta > -math.log(2)
        expm1, exp = torch.expm1(delta), torch.exp(delta)
        near_log, far_log = torch.log(-expm1), torch.log1p(-exp)
        corrected = negative + torch.where(near, near_log, far_log) - prior_offset
        log_g = torch.where(valid, torch.maximum(corrected, floor), floor)
        loss = (torch.logaddexp(positive, log_g) - positive).mean()
        ctx.save_for_backward(
            x, y, x_anchors, y_anchors, similarity, positive, floor, valid, near, expm1, exp, corrected, log_g,
            *views.tensors(),
        )  # fmt: skip
        ctx.tau = tau
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, y, x_anchors, y_anchors, similarity, positive, floor, valid, near, expm1, exp, corrected, log_g, *saved = (
            ctx.saved_tensors
        )
        need_x, need_y, need_tau = ctx.needs_input_grad[:3]
        n = x.shape[0]
        term_grad = grad.expand(2 * n) / (2 * n)
        # logaddexp(positive, log_g) − positive, then log_g = where(valid, maximum(corrected, floor), floor).
        log_g_grad = term_grad / (1 + torch.exp(positive - log_g))
        positive_grad = -term_grad + term_grad / (1 + torch.exp(log_g - positive))
        maximum_grad = torch.where(valid, log_g_grad, 0.0)
        floor_grad = torch.where(valid, 0.0, log_g_grad)
        corrected_grad = torch.where(corrected == floor, maximum_grad / 2, maximum_grad).masked_fill_(
            corrected < floor, 0
        )
        floor_grad = floor_grad + torch.where(corrected == floor, maximum_grad / 2, maximum_grad).masked_fill_(
            corrected > floor, 0
        )
        tau_parts: list[torch.Tensor] = []
        if need_tau:
            # zeros + (log M − reciprocal(tau) · 1), made after the views: its tau gradient comes first.
            reciprocal = ctx.tau.reciprocal()
            tau_parts.append(-((-floor_grad.sum()) * 1) * (reciprocal * reciprocal))
        # corrected = negative + where(near, log(−expm1(δ)), log1p(−exp(δ))) − log(1 − τ⁺); δ = where(valid, ...).
        near_grad = torch.where(near, corrected_grad, 0.0)
        far_grad = torch.where(near, 0.0, corrected_grad)
        delta_grad = (-(far_grad / (-exp + 1))) * exp + (-(near_grad / -expm1)) * (expm1 + 1)
        delta_grad = torch.where(valid, delta_grad, 0.0)
        # δ = log(τ⁺M) + positive − negative.
        grad_x, grad_y, views_tau = _views_backward(
            _Views.from_tensors(saved), x, y, ctx.tau, x_anchors, y_anchors, corrected_grad + -delta_grad, need_x,
            need_y, need_tau,
        )  # fmt: skip
        positive_grad = positive_grad + delta_grad
        # positive = ((x * y).sum(1) / tau).repeat(2), made before the views: its gradients come last.
        similarity_grad, tau_positive = division_backward(
            positive_grad.view(2, n).sum(0), similarity, ctx.tau, need_x or need_y, need_tau
        )
        grad_tau = _in_order(tau_parts + views_tau + ([] if tau_positive is None else [tau_positive]))
        if similarity_grad is not None:
            expanded = similarity_grad[:, None].expand(n, x.shape[1])
            grad_x = grad_x + expanded * y if grad_x is not None else None
            grad_y = grad_y + expanded * x if grad_y is not None else None
        return grad_x, grad_y, grad_tau, None, None, None, None, None


def fused_debiased(x: torch.Tensor, y: torch.Tensor, tau: float | torch.Tensor, tau_plus: float) -> torch.Tensor | None:
    """The debiased loss (``beta = 0``) through :class:`FusedDebiased` at one unshifted tile per call, else None."""
    anchors = _views_inputs(x, y, tau)
    if anchors is None:
        return None
    negatives = 2 * x.shape[0] - 2
    offsets = math.log(negatives), math.log(tau_plus * negatives), math.log1p(-tau_plus)
    return FusedDebiased.apply(x, y, tau, *anchors, *offsets)


class FusedDecoupled(torch.autograd.Function):
    """DCL (unweighted, no queue or shard) at one tile: ``mean(LSE over the negatives − (x_iᵀy_i / τ))``."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        y: torch.Tensor,
        tau: float | torch.Tensor,
        x_anchors: torch.Tensor,
        y_anchors: torch.Tensor,
    ) -> torch.Tensor:
        similarity = (x * y).sum(1)
        views = _views(x, y, x_anchors, y_anchors, positive=False)
        lse = views.lse
        ctx.save_for_backward(x, y, x_anchors, y_anchors, similarity, *views.tensors())
        ctx.tau = tau
        return (lse - (similarity / tau).repeat(2)).mean()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, y, x_anchors, y_anchors, similarity, *saved = ctx.saved_tensors
        need_x, need_y, need_tau = ctx.needs_input_grad[:3]
        n = x.shape[0]
        term_grad = grad.expand(2 * n) / (2 * n)
        # The positives' division by tau was made after the views': its tau gradient comes first.
        similarity_grad, tau_positive = division_backward(
            (-term_grad).view(2, n).sum(0), similarity, ctx.tau, need_x or need_y, need_tau
        )
        grad_x, grad_y, tau_parts = _views_backward(
            _Views.from_tensors(saved), x, y, ctx.tau, x_anchors, y_anchors, term_grad, need_x, need_y, need_tau
        )
        grad_tau = _in_order(([] if tau_positive is None else [tau_positive]) + tau_parts)
        if similarity_grad is not None:
            expanded = similarity_grad[:, None].expand(n, x.shape[1])
            grad_x = grad_x + expanded * y if grad_x is not None else None
            grad_y = grad_y + expanded * x if grad_y is not None else None
        return grad_x, grad_y, grad_tau, None, None


def fused_decoupled(x: torch.Tensor, y: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor | None:
    """DCL through :class:`FusedDecoupled` when its engine calls are one unshifted tile each, else None."""
    anchors = _views_inputs(x, y, tau)
    return None if anchors is None else FusedDecoupled.apply(x, y, tau, *anchors)


class FusedSupCon(torch.autograd.Function):
    """SupCon's L_out (no queue, no shard) at one tile, from the label bookkeeping ``supervised_contrastive_loss``
    makes: each view's class ``index`` among ``classes`` classes, each anchor's class, and its positive count.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        y: torch.Tensor,
        tau: float | torch.Tensor,
        x_anchors: torch.Tensor,
        y_anchors: torch.Tensor,
        index: torch.Tensor,
        anchor_class: torch.Tensor,
        positive_count: torch.Tensor,
        classes: int,
    ) -> torch.Tensor:
        z = torch.cat([x, y])  # both the class members and the anchors (two concatenations in the tiled path)
        class_sums = z.new_zeros(classes, z.shape[1]).index_add(0, index, z)
        gathered = class_sums[anchor_class]
        positive_sum = (z * gathered).sum(1) - (z * z).sum(1)
        views = _views(x, y, x_anchors, y_anchors, positive=True)
        lse = views.lse
        scale = positive_count * tau
        ctx.save_for_backward(
            x, y, x_anchors, y_anchors, z, gathered, positive_sum, scale, positive_count, index, anchor_class,
            *views.tensors(),
        )  # fmt: skip
        ctx.tau, ctx.classes = tau, classes
        return (lse - positive_sum / scale).mean()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, y, x_anchors, y_anchors, z, gathered, positive_sum, scale, count, index, anchor_class, *saved = (
            ctx.saved_tensors
        )
        need_x, need_y, need_tau = ctx.needs_input_grad[:3]
        n = x.shape[0]
        term_grad = grad.expand(2 * n) / (2 * n)
        ratio_grad = -term_grad
        # positive_sum / (count · tau): made after the views, so tau's gradient from it comes first.
        tau_parts: list[torch.Tensor] = []
        if need_tau:
            scale_grad = -ratio_grad * ((positive_sum / scale) / scale)
            tau_parts.append((scale_grad * count).sum())
        grad_x, grad_y, views_tau = _views_backward(
            _Views.from_tensors(saved), x, y, ctx.tau, x_anchors, y_anchors, term_grad, need_x, need_y, need_tau
        )
        grad_tau = _in_order(tau_parts + views_tau)
        if not (need_x or need_y):
            return grad_x, grad_y, grad_tau, *([None] * 6)
        sum_grad = ratio_grad / scale
        own = (-sum_grad)[:, None].expand(z.shape)
        cross = sum_grad[:, None].expand(z.shape)
        # (z * z).sum(1) (both factors), then (z * class_sums[anchor_class]).sum(1): the anchors' concatenation.
        anchors_grad = own * z + own * z + cross * gathered
        # class_sums[anchor_class] and index_add's source: the members' concatenation.
        gathered_grad = cross * z
        sums_grad = torch.zeros(ctx.classes, z.shape[1], dtype=z.dtype, device=z.device).index_put_(
            (anchor_class,), gathered_grad, accumulate=True
        )
        members_grad = sums_grad.index_select(0, index)
        if grad_x is not None:
            grad_x = grad_x + anchors_grad[:n] + members_grad[:n]
        if grad_y is not None:
            grad_y = grad_y + anchors_grad[n:] + members_grad[n:]
        return grad_x, grad_y, grad_tau, *([None] * 6)


def fused_supcon(
    x: torch.Tensor,
    y: torch.Tensor,
    tau: float | torch.Tensor,
    index: torch.Tensor,
    anchor_class: torch.Tensor,
    positive_count: torch.Tensor,
    classes: int,
) -> torch.Tensor | None:
    """SupCon through :class:`FusedSupCon` when its engine calls are one unshifted tile each, else None."""
    anchors = _views_inputs(x, y, tau)
    if anchors is None:
        return None
    return FusedSupCon.apply(x, y, tau, *anchors, index, anchor_class, positive_count, classes)
