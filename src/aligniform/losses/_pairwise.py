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
* backward needs the weights w_ij = exp(s_ij - LSE) (a softmax over pairs):
  dLSE/dx_i = -2t Σ_j w_ij (x_i - x_j), accumulated tile by tile with two
  GEMMs. When all tiles fit in ``SAVED_ELEMENTS`` the forward keeps each
  tile's exp(s - tile max), so backward is just those GEMMs scaled by
  exp(tile max - LSE); larger inputs recompute each tile instead and keep
  memory at O(N × block).
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

# Elements of one (rows × columns) tile of logits. 2^20 float32 = 4 MiB: small
# enough that the few elementwise passes per tile stay cheap, large enough that
# each GEMM runs at full speed (measured: 2^18 to 2^20 best on 2 cores).
# Memory is O(N × block), never O(N²).
BLOCK_ELEMENTS = 1 << 20
# Forward tiles kept for backward when they all fit: 2^26 float32 = 256 MiB (N up to ~11,500).
SAVED_ELEMENTS = 1 << 26


def pair_count(n: int, queue_size: int, intra_batch: bool) -> int:
    """Number of pairs entering the mean: x-to-queue pairs plus i < j batch pairs."""
    return n * queue_size + (n * (n - 1) // 2 if intra_batch else 0)


def _rows_per_block(n_columns: int, block_rows: int | None) -> int:
    if block_rows is not None:
        return max(1, int(block_rows))
    return max(8, BLOCK_ELEMENTS // max(1, n_columns))


def _as_rows(x: torch.Tensor, t: float) -> torch.Tensor:
    """[2t·x, -t||x||², -t]: its product with :func:`_as_columns` of c is -t ||x - c||²."""
    ones = torch.ones_like(x[:, :1])
    return torch.cat([2 * t * x, -t * x.pow(2).sum(1, keepdim=True), -t * ones], 1)


def _as_columns(c: torch.Tensor) -> torch.Tensor:
    """[c, 1, ||c||²]; one GEMM against :func:`_as_rows` gives the scaled negative squared distances."""
    return torch.cat([c, torch.ones_like(c[:, :1]), c.pow(2).sum(1, keepdim=True)], 1)


def _blocks(n: int, queue_size: int, intra_batch: bool, block_rows: int | None):
    """Yield (start, stop, kind) tiles: "batch" tiles pair rows start:stop with x[start:]
    (strict upper triangle), "queue" tiles pair them with the whole queue.
    """
    if intra_batch and n > 1:
        rows = _rows_per_block(n, block_rows)
        for start in range(0, n - 1, rows):
            yield start, min(start + rows, n), "batch"
    if queue_size:
        rows = _rows_per_block(queue_size, block_rows)
        for start in range(0, n, rows):
            yield start, min(start + rows, n), "queue"


class _Tiles:
    """Augmented copies of x (and the queue) plus the tile logic, shared by forward and backward."""

    def __init__(self, x, queue, t, intra_batch, block_rows):
        self.rows = _as_rows(x, t)
        self.columns = _as_columns(x)
        self.queue_columns = None if queue is None else _as_columns(queue)
        queue_size = 0 if queue is None else queue.shape[0]
        self.blocks = list(_blocks(x.shape[0], queue_size, intra_batch, block_rows))

    def total_elements(self, n: int) -> int:
        """Elements of all tiles together (what keeping them for backward would cost)."""
        widths = {"batch": lambda start: n - start, "queue": lambda start: self.queue_columns.shape[0]}
        return sum((stop - start) * widths[kind](start) for start, stop, kind in self.blocks)

    def columns_of(self, start, kind):
        return self.columns[start:] if kind == "batch" else self.queue_columns

    def logits(self, start, stop, kind, shift=None) -> torch.Tensor:
        """-t ||x_i - c||² (minus ``shift``) for the tile; masked pairs are -inf."""
        logits = self.rows[start:stop] @ self.columns_of(start, kind).T
        logits.clamp_max_(0)  # a squared distance is never negative, whatever the rounding
        if shift is not None:
            logits.sub_(shift)
        if kind == "batch":
            size = stop - start
            upper = torch.ones(size, size, dtype=torch.bool, device=logits.device).tril_()
            logits[:, :size].masked_fill_(upper, -math.inf)
        return logits


def pairwise_logsumexp(
    x: torch.Tensor,
    t: float,
    queue: torch.Tensor | None = None,
    intra_batch: bool = True,
    block_rows: int | None = None,
) -> torch.Tensor:
    """Log Σ exp(-t ||a - b||²) over the pairs of :func:`pair_count`, differentiable in x.

    Args:
        x: (N, d) features (already validated).
        t: positive scale.
        queue: optional (K, d) features without gradient.
        intra_batch: include the i < j pairs of x.
        block_rows: rows per tile (default: sized so a tile has ~256K elements).

    Returns:
        A 0-dim tensor (the log of the SUM over pairs, not the mean).
    """
    return _PairwiseLogSumExp.apply(x, queue, float(t), bool(intra_batch), block_rows)


class _PairwiseLogSumExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, queue, t, intra_batch, block_rows):
        with torch.no_grad():
            tiles = _Tiles(x, queue, t, intra_batch, block_rows)
            keep = tiles.total_elements(x.shape[0]) <= SAVED_ELEMENTS
            maxima, sums, kept = [], [], []
            for block in tiles.blocks:
                logits = tiles.logits(*block)
                peak = logits.max()  # finite: every tile holds at least one pair
                exp = logits.sub_(peak).exp_()
                maxima.append(peak)
                sums.append(exp.sum())
                if keep:
                    kept.append(exp)
            maxima, sums = torch.stack(maxima), torch.stack(sums)
            lse = torch.logsumexp(maxima + sums.log(), 0)
        ctx.save_for_backward(x, queue if queue is not None else torch.empty(0), lse, maxima)
        ctx.kept = kept if keep else None
        ctx.has_queue = queue is not None
        ctx.options = (t, intra_batch, block_rows)
        return lse

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        x, queue, lse, maxima = ctx.saved_tensors
        t, intra_batch, block_rows = ctx.options
        tiles = _Tiles(x, queue if ctx.has_queue else None, t, intra_batch, block_rows)
        # [x, 1]: one GEMM with the weights gives both W @ c and the row sums of W.
        x_ones = torch.cat([x, torch.ones_like(x[:, :1])], 1)
        queue_ones = torch.cat([queue, torch.ones_like(queue[:, :1])], 1) if ctx.has_queue else None
        grad = torch.zeros_like(x)
        d = x.shape[1]
        for index, (start, stop, kind) in enumerate(tiles.blocks):
            if ctx.kept is not None:
                # Softmax weights = exp(s - tile max) * exp(tile max - LSE): scale the small GEMM results.
                weights, scale = ctx.kept[index], torch.exp(maxima[index] - lse)
            else:
                weights, scale = tiles.logits(start, stop, kind, shift=lse).exp_(), None
            columns = x_ones[start:] if kind == "batch" else queue_ones
            pulled = weights @ columns  # [W @ c, W 1]
            pushed = weights.T @ x_ones[start:stop] if kind == "batch" else None  # [Wᵀ @ r, Wᵀ 1]
            if scale is not None:
                pulled.mul_(scale)
                pushed = None if pushed is None else pushed.mul_(scale)
            # d(-t||r - c||²)/dr = -2t (r - c), weighted by each pair's softmax weight.
            grad[start:stop] += pulled[:, d:] * x[start:stop] - pulled[:, :d]
            if pushed is not None:
                grad[start:] += pushed[:, d:] * x[start:] - pushed[:, :d]
        return grad.mul_(-2 * t * grad_output), None, None, None, None
