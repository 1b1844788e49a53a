"""Hardest negatives, exactly and row block by row block (Wang & Liu 2021).

Wang & Liu keep, for anchor i, the negatives whose similarity is at least
s_alpha^(i), the upper-alpha quantile of its M negative similarities: the
``ceil(alpha · M)`` largest, plus any ties at that threshold. Each anchor's
threshold depends on its whole row of logits, so this engine walks blocks of
full rows (block_rows × all candidates, O(N × block) memory): per block one
GEMM, an exact k-th-value selection, then the reduction over the kept
negatives. The thresholds are kept for backward (O(N)), which recomputes each
block's logits and treats the selection as constant, as the dense form does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from typing import Any, Literal

import torch
from torch.autograd.function import once_differentiable

from .logsumexp import _unshifted_is_safe, tile_shape
from .select import kth_largest, kth_largest_columns

Reduction = Literal["logsumexp", "sum"]


def kept_negatives(alpha: float, negatives: int) -> int:
    """``ceil(alpha · negatives)``, at least 1, exactly.

    ``alpha`` is read as the decimal it prints as (``0.07`` is 7/100, not the
    binary double just above it), and the ceiling is taken in rational
    arithmetic, so e.g. alpha = 0.07 of 100 negatives keeps 7, not 8.

    Examples:
        >>> kept_negatives(0.07, 100), kept_negatives(0.5, 3), kept_negatives(0.01, 5)
        (7, 2, 1)
    """
    fraction = Fraction(repr(float(alpha)))
    return max(1, -((-fraction.numerator * int(negatives)) // fraction.denominator))


def hardest_negatives_mask(similarity: torch.Tensor, fraction: float, positive_offset: int | None = 0) -> torch.Tensor:
    """Dense boolean mask of each row's negatives in its upper-``fraction`` similarity quantile.

    Row i's positive is column ``i + positive_offset`` and is never in the mask
    (``None``: every column is a negative). It keeps ``kept_negatives(fraction, M)``
    negatives per row, plus ties at the threshold. The dense form, for small
    matrices and as a readable statement of the rule; the losses use the
    blockwise :func:`hardest_logsumexp`.

    Examples:
        >>> import torch
        >>> s = torch.tensor([[1.0, 0.9, 0.1, 0.5], [0.2, 1.0, 0.3, 0.4]])
        >>> hardest_negatives_mask(s, 0.5).int().tolist()
        [[0, 1, 0, 1], [0, 0, 1, 1]]
    """
    n, m = similarity.shape
    columns = torch.arange(m, device=similarity.device)[None]
    if positive_offset is None:
        positive = torch.zeros(n, m, dtype=torch.bool, device=similarity.device)
    else:
        positive = columns == torch.arange(n, device=similarity.device)[:, None] + positive_offset
    negatives = similarity.detach().masked_fill(positive, -math.inf)
    kept = kept_negatives(fraction, m - (positive_offset is not None))
    threshold = negatives.topk(kept, dim=1).values[:, -1:]
    return (negatives >= threshold) & ~positive


def hardest_logsumexp(
    rows: torch.Tensor,
    columns: torch.Tensor,
    kept: int,
    positive_offset: int | None = 0,
    reduction: Reduction = "logsumexp",
    block_rows: int | None = None,
) -> torch.Tensor:
    """Per-row reduction of ``rows @ columns.T`` over each row's ``kept`` hardest negatives.

    Args:
        rows: (n, e) anchors (temperature folded in).
        columns: (m, e) candidates.
        kept: how many of the largest negative logits each row keeps (ties at the
            threshold are kept too), 1 <= kept <= number of negatives.
        positive_offset: row i's positive is column ``i + positive_offset`` and is
            not a negative; ``None``: every column is a negative.
        reduction: ``"logsumexp"`` (hard InfoNCE's denominator, without the
            positive) or ``"sum"`` (HardSimple's sum of kept logits).
        block_rows: rows per block (default: ``BLOCK_ELEMENTS / m``).

    Returns:
        (n,) tensor, differentiable in rows and columns.
    """
    return _HardestNegatives.apply(rows, columns, int(kept), positive_offset, reduction, block_rows)


def _block_logits(
    rows: torch.Tensor, columns: torch.Tensor, start: int, stop: int, positive_offset: int | None
) -> torch.Tensor:
    logits = rows[start:stop] @ columns.T
    if positive_offset is not None:
        logits.diagonal(start + positive_offset).fill_(-math.inf)
    return logits


def _blocks(n: int, m: int, block_rows: int | None) -> range:
    # Blocks of full rows (every candidate), of about BLOCK_ELEMENTS logits: the engine's tiling policy.
    rows, _ = tile_shape(m, block_rows, block_columns=max(1, m))
    return range(0, n, rows)


class _HardestNegatives(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        rows: torch.Tensor,
        columns: torch.Tensor,
        kept: int,
        positive_offset: int | None,
        reduction: Reduction,
        block_rows: int | None,
    ) -> torch.Tensor:
        n, m = rows.shape[0], columns.shape[0]
        step = _blocks(n, m, block_rows).step
        thresholds, out = rows.new_empty(n), rows.new_empty(n)
        with torch.no_grad():
            for start in _blocks(n, m, block_rows):
                stop = min(start + step, n)
                logits = _block_logits(rows, columns, start, stop, positive_offset)
                # A positive at -inf is the smallest entry of its row, so for any kept <= M - 1 negatives the row's
                # kept-th largest entry is its kept-th largest negative; the counting selection takes -inf as it is.
                threshold = kth_largest(logits, kept)
                dropped = logits < threshold[:, None]
                if reduction == "logsumexp":
                    out[start:stop] = torch.logsumexp(logits.masked_fill_(dropped, -math.inf), 1)
                else:
                    out[start:stop] = logits.masked_fill_(dropped, 0).sum(1)
                thresholds[start:stop] = threshold
        ctx.save_for_backward(rows, columns, thresholds, out)
        ctx.options = (positive_offset, reduction, block_rows)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        rows, columns, thresholds, out = ctx.saved_tensors
        positive_offset, reduction, block_rows = ctx.options
        need_rows, need_columns = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_rows = torch.zeros_like(rows) if need_rows else None
        grad_columns = torch.zeros_like(columns) if need_columns else None
        n, m = rows.shape[0], columns.shape[0]
        step = _blocks(n, m, block_rows).step
        for start in _blocks(n, m, block_rows):
            stop = min(start + step, n)
            logits = _block_logits(rows, columns, start, stop, positive_offset)
            keep = logits >= thresholds[start:stop, None]
            if reduction == "logsumexp":
                weights = logits.sub_(out[start:stop, None]).exp_().masked_fill_(~keep, 0)
            else:
                weights = keep.to(rows.dtype)
            weights.mul_(grad[start:stop, None])
            if grad_rows is not None:
                grad_rows[start:stop] = weights @ columns
            if grad_columns is not None:
                grad_columns.addmm_(weights.T, rows[start:stop])
        return grad_rows, grad_columns, None, None, None, None


# Both directions from one matrix when it fits: one kept (n × n) matrix of at most 2^25 float32 = 128 MiB (the
# bound dates from when two were kept; unchanged, so the same inputs take the same path).
PAIRED_ELEMENTS = 1 << 25


def hardest_logsumexp_both(
    rows: torch.Tensor, columns: torch.Tensor, kept: int, reduction: Reduction = "logsumexp"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both directions of a symmetric hard loss from one (n × n) logit matrix: rows' and columns' reductions.

    Row i's negatives are ``l_ij`` (j ≠ i) and column j's are ``l_ij`` (i ≠ j), each keeping its own ``kept``
    largest (plus ties), as two calls ``hardest_logsumexp(rows, columns, kept)`` and
    ``hardest_logsumexp(columns, rows, kept)`` would (to float32 rounding: ``l`` is computed once, as
    ``rows @ columns.T``). One GEMM forward instead of two, and the logits are kept for backward (two GEMMs,
    none recomputed; the exps are recomputed tile by tile), so it takes O(n²) memory (one n × n matrix):
    for ``n² <= PAIRED_ELEMENTS`` only. The columns' thresholds are counted on the same floats, in slabs of
    columns (:func:`.select.kth_largest_columns`), not on a transposed copy.

    Examples:
        >>> import torch
        >>> r, c = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
        >>> row_part, column_part = hardest_logsumexp_both(r, c, 2)
        >>> torch.allclose(column_part, hardest_logsumexp(c, r, 2))
        True
    """
    if rows.shape != columns.shape or rows.shape[0] ** 2 > PAIRED_ELEMENTS:
        raise ValueError(f"rows and columns must be the same (n, e) shape with n² <= {PAIRED_ELEMENTS}")
    return _HardestBoth.apply(rows, columns, int(kept), reduction)


def _reduce(logits: torch.Tensor, keep: torch.Tensor, reduction: Reduction, dim: int) -> torch.Tensor:
    if reduction == "logsumexp":
        return torch.logsumexp(logits.masked_fill(~keep, -math.inf), dim)
    return torch.where(keep, logits, torch.zeros_like(logits)).sum(dim)


def _weights(logits: torch.Tensor, keep: torch.Tensor, out: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """d(reduction)/d(logit) for one direction (``out`` broadcast along its rows or columns)."""
    if reduction == "logsumexp":
        return (logits - out).exp_().masked_fill_(~keep, 0)
    return keep.to(logits.dtype)


# Rows per tile of the paired form's elementwise passes (masks, exps, weights): about 2^18 values, small enough
# to stay in cache between the passes over one tile, large enough that per-call overhead stays small.
PAIRED_TILE_ELEMENTS = 1 << 18


def _kept_exp_tiles(
    logits: torch.Tensor, row_thresholds: torch.Tensor, column_thresholds: torch.Tensor
) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """For each tile of rows [start, stop): exp(tile) and the rows' and the columns' kept masks as 0/1 floats.

    All three are written into one small scratch buffer (3, h, n), reused from tile to tile (in cache), so no n × n
    tensor is allocated. A comparison written to a float tensor is vectorised where a boolean one is not (several
    times faster on a CPU), and multiplying by a 0/1 float is exact, so the masks are floats.
    """
    n = logits.shape[0]
    step = max(1, PAIRED_TILE_ELEMENTS // max(1, n))
    scratch = logits.new_empty(3, min(step, n), n)
    for start in range(0, n, step):
        stop = min(start + step, n)
        tile, h = logits[start:stop], stop - start
        exp, row_keep, column_keep = scratch[0, :h], scratch[1, :h], scratch[2, :h]
        torch.exp(tile, out=exp)
        torch.ge(tile, row_thresholds[start:stop, None], out=row_keep)
        torch.ge(tile, column_thresholds[None], out=column_keep)
        yield start, stop, exp, row_keep, column_keep


class _HardestBoth(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, rows: torch.Tensor, columns: torch.Tensor, kept: int, reduction: Reduction
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            logits = rows @ columns.T
            logits.diagonal().fill_(-math.inf)  # the positives: excluded from both directions
            # The columns' thresholds are read from the same floats, a slab of columns at a time (no transpose).
            row_thresholds = kth_largest(logits, kept)
            column_thresholds = kth_largest_columns(logits, kept)
            ctx.unshifted = reduction == "logsumexp" and _unshifted_is_safe(rows, columns)
            if ctx.unshifted:
                # Every logit within ±UNSHIFTED_LIMIT: exp without a shift, plain sums. Tile by tile (in cache),
                # into small scratch buffers: the logits are the only n × n tensor, kept for backward, which
                # recomputes the exps (a fresh n × n tensor costs its page faults: docs/benchmarks.md).
                n = logits.shape[0]
                row_sum, column_sum = logits.new_empty(n), logits.new_zeros(n)
                for start, stop, exp, row_keep, column_keep in _kept_exp_tiles(
                    logits, row_thresholds, column_thresholds
                ):
                    column_sum.add_(column_keep.mul_(exp).sum(0))
                    row_sum[start:stop] = row_keep.mul_(exp).sum(1)
                row_out, column_out = row_sum.log_(), column_sum.log_()
            else:
                row_keep, column_keep = logits >= row_thresholds[:, None], logits >= column_thresholds[None]
                row_out = _reduce(logits, row_keep, reduction, 1)
                column_out = _reduce(logits, column_keep, reduction, 0)
        ctx.save_for_backward(rows, columns, row_out, column_out, logits, row_thresholds, column_thresholds)
        ctx.reduction = reduction
        return row_out, column_out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_row: torch.Tensor, grad_column: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        rows, columns, row_out, column_out, logits, row_thresholds, column_thresholds = ctx.saved_tensors
        need_rows, need_columns = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not ctx.unshifted:
            weights = _weights(logits, logits >= row_thresholds[:, None], row_out[:, None], ctx.reduction)
            weights.mul_(grad_row[:, None])
            column_weights = _weights(logits, logits >= column_thresholds[None], column_out[None], ctx.reduction)
            weights.addcmul_(column_weights, grad_column[None])
            grad_rows = weights @ columns if need_rows else None
            grad_columns = weights.T @ rows if need_columns else None
            return grad_rows, grad_columns, None, None
        # d out_i / d l_ij = exp(l_ij) / exp(out_i) on kept pairs: the weights of a tile of rows, then its share
        # of both gradients' GEMMs, in cache.
        row_scale, column_scale = grad_row * torch.exp(-row_out), grad_column * torch.exp(-column_out)
        grad_rows = torch.empty_like(rows) if need_rows else None
        grad_columns = torch.zeros_like(columns) if need_columns else None
        for start, stop, exp, row_keep, column_keep in _kept_exp_tiles(logits, row_thresholds, column_thresholds):
            weights = row_keep.mul_(row_scale[start:stop, None]).addcmul_(column_keep, column_scale[None]).mul_(exp)
            if grad_rows is not None:
                torch.mm(weights, columns, out=grad_rows[start:stop])
            if grad_columns is not None:
                grad_columns.addmm_(weights.T, rows[start:stop])
        return grad_rows, grad_columns, None, None
