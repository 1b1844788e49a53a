"""Tiled log-sum-exp of exp(-t ||x_i - x_j||²) over pairs, in O(N × block) memory.

This is the engine behind :func:`aligniform.uniform_loss` and
:func:`aligniform.metrics.uniformity`. The plain form

    torch.pdist(x).pow(2).mul(-t).exp().mean().log()

materialises all N(N-1)/2 distances and keeps them for backward (O(N²)
memory), and underflows to -inf when every pair is far apart. Here:

* squared distances come from one GEMM per row block,
  ||x_i - x_j||² = ||x_i||² + ||x_j||² - 2 x_iᵀx_j (exact for any vectors);
* only the strict upper triangle j > i is visited (each pair once);
* block results are combined with log-sum-exp, so nothing underflows;
* backward recomputes each block instead of storing it: it needs only x and
  the scalar result. With weights w_ij = exp(s_ij - LSE) (a softmax over pairs),
  dLSE/dx_i = -2t Σ_j w_ij (x_i - x_j), accumulated block by block.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

# Elements of one (rows × columns) block of logits. 2^22 float32 = 16 MiB: big
# enough that each GEMM is efficient, small enough that a 65,536-row batch
# stays far below 1 GiB of extra memory (a few blocks are alive at once).
BLOCK_ELEMENTS = 1 << 22


def pair_count(n: int, queue_size: int, intra_batch: bool) -> int:
    """Number of pairs entering the mean: x-to-queue pairs plus i < j batch pairs."""
    return n * queue_size + (n * (n - 1) // 2 if intra_batch else 0)


def _rows_per_block(n_columns: int, block_rows: int | None) -> int:
    if block_rows is not None:
        return max(1, int(block_rows))
    return max(1, BLOCK_ELEMENTS // max(1, n_columns))


def _neg_scaled_sqdist(rows, cols, row_sq, col_sq, t: float) -> torch.Tensor:
    """-t ||r - c||² for every (row, col), computed in place on the GEMM output."""
    logits = rows @ cols.T
    logits.mul_(2).sub_(row_sq[:, None]).sub_(col_sq[None, :])  # = -||r - c||²
    return logits.clamp_max_(0).mul_(t)


def _blocks(x: torch.Tensor, queue: torch.Tensor | None, intra_batch: bool, block_rows: int | None):
    """Yield (start, stop, columns, column_sq, kind) for every block of pairs.

    kind "batch": columns are x[start:], of which the first (stop - start) need
    the strict-upper-triangle mask. kind "queue": columns are the whole queue.
    """
    n = x.shape[0]
    sq = (x * x).sum(1)
    if intra_batch and n > 1:
        rows = _rows_per_block(n, block_rows)
        for start in range(0, n - 1, rows):
            stop = min(start + rows, n)
            yield start, stop, x[start:], sq[start:], "batch"
    if queue is not None:
        queue_sq = (queue * queue).sum(1)
        rows = _rows_per_block(queue.shape[0], block_rows)
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            yield start, stop, queue, queue_sq, "queue"


def _block_logits(x, sq, start, stop, columns, column_sq, kind, t):
    logits = _neg_scaled_sqdist(x[start:stop], columns, sq[start:stop], column_sq, t)
    if kind == "batch":
        size = stop - start
        diagonal = torch.ones(size, size, dtype=torch.bool, device=x.device).tril_()
        logits[:, :size].masked_fill_(diagonal, -math.inf)
    return logits


def pairwise_logsumexp(
    x: torch.Tensor,
    t: float,
    queue: torch.Tensor | None = None,
    intra_batch: bool = True,
    block_rows: int | None = None,
) -> torch.Tensor:
    """log Σ exp(-t ||a - b||²) over the pairs of :func:`pair_count`, differentiable in x.

    Args:
        x: (N, d) features (already validated).
        t: positive scale.
        queue: optional (K, d) features without gradient.
        intra_batch: include the i < j pairs of x.
        block_rows: rows per tile (default: sized so a tile has ~4M elements).

    Returns:
        A 0-dim tensor (the log of the SUM over pairs, not the mean).
    """
    return _PairwiseLogSumExp.apply(x, queue, float(t), bool(intra_batch), block_rows)


def _forward_lse(x, queue, t, intra_batch, block_rows) -> torch.Tensor:
    sq = (x * x).sum(1)
    partial = [
        torch.logsumexp(_block_logits(x, sq, start, stop, cols, col_sq, kind, t).flatten(), 0)
        for start, stop, cols, col_sq, kind in _blocks(x, queue, intra_batch, block_rows)
    ]
    return torch.logsumexp(torch.stack(partial), 0)


class _PairwiseLogSumExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, queue, t, intra_batch, block_rows):
        with torch.no_grad():
            lse = _forward_lse(x, queue, t, intra_batch, block_rows)
        ctx.save_for_backward(x, queue if queue is not None else torch.empty(0), lse)
        ctx.has_queue = queue is not None
        ctx.options = (t, intra_batch, block_rows)
        return lse

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        x, queue, lse = ctx.saved_tensors
        queue = queue if ctx.has_queue else None
        t, intra_batch, block_rows = ctx.options
        grad = torch.zeros_like(x)
        sq = (x * x).sum(1)
        with torch.no_grad():
            for start, stop, cols, col_sq, kind in _blocks(x, queue, intra_batch, block_rows):
                rows = x[start:stop]
                weights = _block_logits(x, sq, start, stop, cols, col_sq, kind, t).sub_(lse).exp_()
                # d(-t||r - c||²)/dr = -2t (r - c); the pair's softmax weight scales it.
                grad[start:stop] += weights.sum(1)[:, None] * rows - weights @ cols
                if kind == "batch":
                    grad[start:] += weights.sum(0)[:, None] * cols - weights.T @ rows
        grad.mul_(-2 * t * grad_output)
        return grad, None, None, None, None
