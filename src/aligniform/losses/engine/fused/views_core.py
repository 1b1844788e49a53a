"""The engine's calls over the 2N views redone at one tile, their backward, and NT-Xent's fused node (:mod:`.views`).

Each engine call the losses over the 2N views make at one tile is redone here with the same operations on the
same shapes: the cross block x/τ · yᵀ (the engine's whole-matrix branch), and the same-view triangles (mask
``"upper"``: the engine's loop, whose single tile starts at column 1, so its shape is (n × (m − 1))). A masked logit
is set to 0 after the exp instead of to -inf before it: exp(-inf) is +0 too, and a one-pass ``triu_`` replaces
building a boolean mask. Backward reproduces the engine's backward per call, then each surrounding operation's
autograd formula, and adds the gradients reaching one tensor in the order autograd's engine adds them (its nodes run
latest-created first), which is what makes a tensor's gradient of three or more contributions bitwise that of the
tiled path.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import torch
from torch.autograd.function import once_differentiable

from ..logsumexp import UNSHIFTED_LIMIT
from .common import division_backward, one_tile, softmax_scale, wants_grad


class _Block(NamedTuple):
    """One engine call's forward: its exp tile, the row and column sums of exp (not yet logged), its first column."""

    exp: torch.Tensor
    rows: torch.Tensor
    columns: torch.Tensor
    start: int


def _block(rows: torch.Tensor, columns: torch.Tensor, mask: Literal["none", "diagonal", "upper"]) -> _Block:
    """``tiled_logsumexp(rows, columns, column_lse=True, mask=mask)`` at one tile, as the engine computes it.

    The sums are returned before their log, which the callers take in one pass over several blocks' sums.
    """
    if mask == "upper":
        # The loop's tile: columns 1.. (column 0 has no pair), local (a, b) kept when b >= a; the engine adds the
        # column sums into zeros, so column 0's is 0 (its log -inf).
        exp = (rows @ columns[1:].T).exp_().triu_()
        return _Block(exp, exp.sum(1), torch.nn.functional.pad(exp.sum(0), (1, 0)), 1)
    exp = (rows @ columns.T).exp_()
    if mask == "diagonal":
        exp.diagonal().fill_(0)
    return _Block(exp, exp.sum(1), exp.sum(0), 0)


def _block_backward(
    exp: torch.Tensor,
    start: int,
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
    weights = torch.mul(exp, a[:, None]).addcmul_(exp, b[start:, None].T)
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


# NT-Xent: z = [x; y], the upper triangle of z zᵀ/τ, each anchor's row and column parts joined by logaddexp.


class FusedNTXent(torch.autograd.Function):
    """:func:`~aligniform.losses.nt_xent_loss` at one tile: ``anchors = z / tau`` and ``z = [x; y]`` given."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, y: torch.Tensor, tau: float | torch.Tensor, z: torch.Tensor, anchors: torch.Tensor
    ) -> torch.Tensor:
        n = x.shape[0]
        block = _block(anchors, z, "upper")
        rows, columns = block.rows.log_(), block.columns.log_()
        lse = torch.logaddexp(rows, columns)
        positive = (anchors[:n] * y).sum(1)
        ctx.save_for_backward(y, z, anchors, block.exp, rows, columns)
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
        rows_grad = term_grad / (1 + torch.exp(columns - rows))
        columns_grad = term_grad / (1 + torch.exp(rows - columns))
        a, b = softmax_scale(rows_grad, rows), softmax_scale(columns_grad, columns)
        grad_anchors, grad_z = _block_backward(exp, 1, anchors, z, a, b, True, need_x or need_y)
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
    if not one_tile(points, points) or not wants_grad(x, y, tau):
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
    exps: list[torch.Tensor]  # the exp tiles of x·y, x·x and y·y
    parts: torch.Tensor  # (2, 3, N): x's [cross rows, x·x rows, x·x columns], then y's [cross columns, y·y ...]
    lse: torch.Tensor  # (2N,): x's then y's

    def tensors(self) -> list[torch.Tensor]:
        return [*self.exps, self.parts, self.lse]

    @staticmethod
    def from_tensors(saved: list[torch.Tensor]) -> _Views:
        return _Views(saved[:3], saved[3], saved[4])


def _views(
    x: torch.Tensor, y: torch.Tensor, x_anchors: torch.Tensor, y_anchors: torch.Tensor, positive: bool
) -> _Views:
    """``other_views_logsumexp`` without queue or shard, at one unshifted tile per engine call."""
    cross = _block(x_anchors, y, "none" if positive else "diagonal")
    same_x = _block(x_anchors, x, "upper")
    same_y = _block(y_anchors, y, "upper")
    # The six sums' logs in one pass; combine_logsumexp's torch.where are identities here (at one unshifted tile
    # every anchor has a finite part), and its two stacks are the halves of this tensor, so that backward treats
    # all six parts in one pass too.
    parts = torch.stack([cross.rows, same_x.rows, same_x.columns, cross.columns, same_y.rows, same_y.columns])
    parts = parts.log_().view(2, 3, x.shape[0])
    # torch.logsumexp(parts[i], 0) for both halves at once, written out as ATen computes it.
    peak = parts.amax(1, keepdim=True)
    peak.masked_fill_(peak.abs() == math.inf, 0)
    lse = (parts - peak).exp_().sum(1).log_().add_(peak.squeeze(1)).view(-1)
    return _Views([cross.exp, same_x.exp, same_y.exp], parts, lse)


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
    y_anchors_grad, y_same = _block_backward(
        views.exps[2], 1, y_anchors, y, y_parts[1], y_parts[2], need_y_anchors, need_y
    )
    x_same_anchors, x_same = _block_backward(
        views.exps[1], 1, x_anchors, x, x_parts[1], x_parts[2], need_x_anchors, need_x
    )
    x_cross_anchors, y_cross = _block_backward(
        views.exps[0], 0, x_anchors, y, x_parts[0], y_parts[0], need_x_anchors, need_y
    )
    # The sums in place (the same additions in the same order, into tensors made here, without new ones).
    grad_x = grad_y = None
    tau_parts: list[torch.Tensor] = []
    if y_anchors_grad is not None:
        y_divided, tau_y = division_backward(y_anchors_grad, y, tau, need_y, need_tau)
        if need_y:
            assert y_same is not None and y_cross is not None and y_divided is not None
            grad_y = y_same.add_(y_cross).add_(y_divided)
        tau_parts += [] if tau_y is None else [tau_y]
    if x_same_anchors is not None and x_cross_anchors is not None:
        x_divided, tau_x = division_backward(x_same_anchors.add_(x_cross_anchors), x, tau, need_x, need_tau)
        if need_x:
            assert x_same is not None and x_divided is not None
            grad_x = x_same.add_(x_divided)
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
    if not one_tile(x.shape[0], y.shape[0]) or x.shape[0] < 2 or not wants_grad(x, y, tau):
        return None
    with torch.no_grad():
        x_anchors, y_anchors = x / tau, y / tau
        if not _safe([(x_anchors, y), (x_anchors, x), (y_anchors, y)]):
            return None
    return x_anchors, y_anchors
