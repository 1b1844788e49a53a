"""The losses over the 2N views (NT-Xent, SupCon, DCL, the debiased loss's log-sum-exps) fused: see :mod:`..fused`.

Each engine call these losses make at one tile is redone here with the same operations on the same shapes: the
cross block x/τ · yᵀ (the engine's whole-matrix branch), and the same-view triangles (mask ``"upper"``: the engine's
loop, whose single tile starts at column 1, so its shape is (n × (m − 1))). A masked logit is set to 0 after the
exp instead of to -inf before it: exp(-inf) is +0 too, and a one-pass ``triu_`` replaces building a boolean mask.
Backward reproduces the engine's backward per call, then each surrounding operation's autograd formula, and adds
the gradients reaching one tensor in the order autograd's engine adds them (its nodes run latest-created first),
which is what makes a tensor's gradient of three or more contributions bitwise that of the tiled path.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import torch
from torch.autograd.function import once_differentiable

from ..logsumexp import UNSHIFTED_LIMIT
from .common import division_backward, one_tile, softmax_scale


class _Block(NamedTuple):
    """One engine call's forward: its exp tile, row and column log-sum-exps, and the tile's first column."""

    exp: torch.Tensor
    rows: torch.Tensor
    columns: torch.Tensor
    start: int


def _block(rows: torch.Tensor, columns: torch.Tensor, mask: Literal["none", "diagonal", "upper"]) -> _Block:
    """``tiled_logsumexp(rows, columns, column_lse=True, mask=mask)`` at one tile, as the engine computes it."""
    if mask == "upper":
        # The loop's tile: columns 1.. (column 0 has no pair), local (a, b) kept when b >= a.
        exp = (rows @ columns[1:].T).exp_().triu_()
        column_sum = rows.new_zeros(columns.shape[0])
        column_sum[1:] += exp.sum(0)
        return _Block(exp, exp.sum(1).log_(), column_sum.log_(), 1)
    exp = (rows @ columns.T).exp_()
    if mask == "diagonal":
        exp.diagonal().fill_(0)
    return _Block(exp, exp.sum(1).log_(), exp.sum(0).log_(), 0)


def _block_backward(
    block: _Block,
    rows: torch.Tensor,
    columns: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    need_rows: bool,
    need_columns: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The engine's backward of one call from its softmax scales ``a = g · exp(-row LSE)`` and ``b`` (columns').

    G = E ⊙ (a 1ᵀ + 1 bᵀ), then grad rows = G c and grad columns = Gᵀ r.
    """
    if not (need_rows or need_columns):
        return None, None
    start = block.start
    weights = torch.mul(block.exp, a[:, None]).addcmul_(block.exp, b[start:, None].T)
    rows_grad = torch.zeros_like(rows).addmm_(weights, columns[start:]) if need_rows else None
    columns_grad = None
    if need_columns:
        columns_grad = torch.zeros_like(columns)
        columns_grad[start:].addmm_(weights.T, rows)
    return rows_grad, columns_grad


def _safe(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """The engine's unshifted test (``_unshifted_is_safe``) for each (rows, columns) pair, each norm computed once."""
    limit = UNSHIFTED_LIMIT.get(pairs[0][0].dtype)
    if limit is None:
        return False
    norms: dict[int, torch.Tensor] = {}

    def largest(values: torch.Tensor) -> torch.Tensor:
        if id(values) not in norms:
            norms[id(values)] = torch.linalg.vector_norm(values, dim=1).amax()
        return norms[id(values)]

    return all(float(largest(rows) * largest(columns)) <= limit for rows, columns in pairs)


def _wants_grad(*tensors: float | torch.Tensor) -> bool:
    return any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


# NT-Xent: z = [x; y], the upper triangle of z zᵀ/τ, each anchor's row and column parts joined by logaddexp.


class FusedNTXent(torch.autograd.Function):
    """:func:`~aligniform.losses.nt_xent_loss` at one tile: ``anchors = z / tau`` and ``z = [x; y]`` given."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, y: torch.Tensor, tau: float | torch.Tensor, z: torch.Tensor, anchors: torch.Tensor
    ) -> torch.Tensor:
        n = x.shape[0]
        block = _block(anchors, z, "upper")
        lse = torch.logaddexp(block.rows, block.columns)
        positive = (anchors[:n] * y).sum(1)
        ctx.save_for_backward(y, z, anchors, block.exp, block.rows, block.columns)
        ctx.tau = tau
        return (lse - positive.repeat(2)).mean()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        y, z, anchors, exp, rows, columns = ctx.saved_tensors
        need_x, need_y, need_tau = ctx.needs_input_grad[:3]
        n = y.shape[0]
        term_grad = grad.expand(2 * n) / (2 * n)
        positive_grad = (-term_grad).view(2, n).sum(0)
        # logaddexp(rows, columns): each side's gradient is grad / (1 + exp(other - self)).
        block = _Block(exp, rows, columns, 1)
        rows_grad = term_grad / (1 + torch.exp(columns - rows))
        columns_grad = term_grad / (1 + torch.exp(rows - columns))
        a, b = softmax_scale(rows_grad, rows), softmax_scale(columns_grad, columns)
        grad_anchors, grad_z = _block_backward(block, anchors, z, a, b, True, need_x or need_y)
        assert grad_anchors is not None
        expanded = positive_grad[:, None].expand(n, y.shape[1])
        grad_anchors[:n] += expanded * y  # anchors[:n] * y, through the slice
        grad_z_anchors, grad_tau = division_backward(grad_anchors, z, ctx.tau, need_x or need_y, need_tau)
        grad_x = grad_y = None
        if grad_z is not None and grad_z_anchors is not None:
            grad_z = grad_z + grad_z_anchors
            grad_x = grad_z[:n] if need_x else None
            grad_y = grad_z[n:] + expanded * anchors[:n] if need_y else None
        return grad_x, grad_y, grad_tau, None, None


def fused_nt_xent(x: torch.Tensor, y: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor | None:
    """NT-Xent through :class:`FusedNTXent` when the tiled path would be one unshifted tile, else None."""
    points = 2 * x.shape[0]
    if not one_tile(points, points) or not _wants_grad(x, y, tau):
        return None
    with torch.no_grad():
        z = torch.cat([x, y])
        anchors = z / tau
        if not _safe([(anchors, z)]):
            return None
    return FusedNTXent.apply(x, y, tau, z, anchors)


# The other views (other_views.py): x/τ against y (both directions), and the x·x and y·y triangles, per anchor
# combined by a log-sum-exp of the three parts.


class _Views(NamedTuple):
    cross: _Block
    same_x: _Block
    same_y: _Block
    parts: torch.Tensor  # (2, 3, N): x's [cross rows, x·x rows, x·x columns], then y's [cross columns, y·y ...]
    lse: torch.Tensor  # (2N,): x's then y's

    def tensors(self) -> list[torch.Tensor]:
        blocks = [self.cross, self.same_x, self.same_y]
        return [t for b in blocks for t in b[:3]] + [self.parts, self.lse]

    @staticmethod
    def from_tensors(saved: list[torch.Tensor]) -> _Views:
        cross, same_x, same_y = (_Block(saved[i], saved[i + 1], saved[i + 2], 0 if i == 0 else 1) for i in (0, 3, 6))
        return _Views(cross, same_x, same_y, saved[9], saved[10])


def _views(
    x: torch.Tensor, y: torch.Tensor, x_anchors: torch.Tensor, y_anchors: torch.Tensor, positive: bool
) -> _Views:
    """``other_views_logsumexp`` without queue or shard, at one unshifted tile per engine call."""
    cross = _block(x_anchors, y, "none" if positive else "diagonal")
    same_x = _block(x_anchors, x, "upper")
    same_y = _block(y_anchors, y, "upper")
    # combine_logsumexp's torch.where are identities here: at one unshifted tile every anchor has a finite part.
    # Its stacks are the two halves of one tensor, so that backward can treat all six parts in one pass.
    parts = torch.stack([cross.rows, same_x.rows, same_x.columns, cross.columns, same_y.rows, same_y.columns])
    parts = parts.view(2, 3, x.shape[0])
    return _Views(cross, same_x, same_y, parts, torch.cat([torch.logsumexp(parts[0], 0), torch.logsumexp(parts[1], 0)]))


def _views_backward(
    views: _Views,
    x: torch.Tensor,
    y: torch.Tensor,
    tau: float | torch.Tensor,
    x_anchors: torch.Tensor,
    y_anchors: torch.Tensor,
    grad: torch.Tensor,
    need_x: bool,
    need_y: bool,
    need_tau: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None, list[torch.Tensor]]:
    """Gradients of x and y (summed in autograd's order) and tau's parts (in that order) from the log-sum-exps'."""
    n = x.shape[0]
    # logsumexp's backward, grad · exp(part − result), then each engine call's softmax scales (as softmax_scale,
    # for all six parts at once: the operations are elementwise).
    parts_grad = grad.view(2, 1, n) * (views.parts - views.lse.view(2, 1, n)).exp()
    scales = torch.where(views.parts != -math.inf, parts_grad * torch.exp(-views.parts), 0.0)
    x_parts, y_parts = scales[0], scales[1]
    need_x_anchors, need_y_anchors = need_x or need_tau, need_y or need_tau
    # Autograd runs the later engine calls first: y·y, x·x, then x·y.
    y_anchors_grad, y_same = _block_backward(views.same_y, y_anchors, y, y_parts[1], y_parts[2], need_y_anchors, need_y)
    x_same_anchors, x_same = _block_backward(views.same_x, x_anchors, x, x_parts[1], x_parts[2], need_x_anchors, need_x)
    x_cross_anchors, y_cross = _block_backward(
        views.cross, x_anchors, y, x_parts[0], y_parts[0], need_x_anchors, need_y
    )
    grad_x = grad_y = None
    tau_parts: list[torch.Tensor] = []
    if y_anchors_grad is not None:
        y_divided, tau_y = division_backward(y_anchors_grad, y, tau, need_y, need_tau)
        if need_y:
            assert y_same is not None and y_cross is not None and y_divided is not None
            grad_y = y_same + y_cross + y_divided
        tau_parts += [] if tau_y is None else [tau_y]
    if x_same_anchors is not None and x_cross_anchors is not None:
        x_divided, tau_x = division_backward(x_same_anchors + x_cross_anchors, x, tau, need_x, need_tau)
        if need_x:
            assert x_same is not None and x_divided is not None
            grad_x = x_same + x_divided
        tau_parts += [] if tau_x is None else [tau_x]
    return grad_x, grad_y, tau_parts


def _in_order(parts: list[torch.Tensor]) -> torch.Tensor | None:
    """Gradients reaching one tensor, added as autograd adds them: ((first + second) + third) ..."""
    if not parts:
        return None
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _views_inputs(
    x: torch.Tensor, y: torch.Tensor, tau: float | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(x / tau, y / tau) when every engine call of the views would be one unshifted tile with a gradient, else None."""
    if not one_tile(x.shape[0], y.shape[0]) or x.shape[0] < 2 or not _wants_grad(x, y, tau):
        return None
    with torch.no_grad():
        x_anchors, y_anchors = x / tau, y / tau
        if not _safe([(x_anchors, y), (x_anchors, x), (y_anchors, y)]):
            return None
    return x_anchors, y_anchors


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
