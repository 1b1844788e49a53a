"""Exact pairwise log-sum-exps, tile by tile: the engine behind every pairwise loss.

Every loss of the contrastive family and the uniformity loss is built from
log-sum-exps of logits ``l_ij = r_iᵀc_j`` between anchor *rows* r_i and
candidate *columns* c_j (temperature and augmentation are folded into r and c
by the caller, with ordinary autograd, so a learnable temperature gets its
gradient for free). :func:`tiled_logsumexp` returns, over a chosen set of
pairs,

* the row log-sum-exp ``LSE_j l_ij`` (each anchor over its candidates), and/or
* the column log-sum-exp ``LSE_i l_ij`` (each candidate over the anchors: the
  other direction of a symmetric loss, read from the same tiles),

exactly, without ever holding the (rows × columns) matrix: it walks
(block_rows × block_columns) tiles, one GEMM each, and keeps O(rows + columns)
running sums. The custom backward recomputes each tile and turns it into the
softmax weights of both directions, ``G_ij = g_i P^row_ij + h_j P^col_ij``,
then two GEMMs per tile: ``grad r += G c`` and ``grad c += Gᵀ r``. So memory is
O((rows + columns) × d + tile) forward and backward.

The pair set is all pairs (``mask="none"``), all but ``j = i + offset``
(``"diagonal"``: a positive excluded), or only ``j > i + offset`` (``"upper"``:
each unordered pair of one set once). ``offset`` is the global index of the
first row minus that of the first column, so a process holding rows
``[r0, r1)`` of a batch can run the same call on its own rows against all the
(gathered) columns with ``offset = r0``; its row results are final, and its
column results are partial log-sum-exps that combine across processes by a
log-sum-exp all-reduce.

Two speed tricks, neither changing the result beyond rounding:

* **Unshifted exp.** A log-sum-exp normally subtracts a maximum before exp().
  When every logit is known to lie in [-UNSHIFTED_LIMIT, UNSHIFTED_LIMIT] (the
  Cauchy-Schwarz bound ``max|r| · max|c|``, e.g. unit features with tau >= 1/60
  in float32), exp(l) can neither overflow nor underflow to zero, so a tile
  needs one in-place exp and plain sums. Otherwise each tile subtracts its row
  (and column) maxima and combines by log-sum-exp, which is exact for any logits.
* **Kept tiles.** When all tiles together have at most ``SAVED_ELEMENTS``
  elements (N ≲ 8,000 for one N × N matrix), the unshifted forward keeps its
  exp tiles and backward skips the recomputing GEMM. Memory for this is capped
  by the constant, never O(N²) for large N.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch.autograd.function import once_differentiable

Mask = Literal["none", "diagonal", "upper"]

# Elements of one (rows × columns) tile of logits. 2^22 float32 = 16 MiB: large
# enough that each GEMM runs at full speed and that a 4096 × 4096 loss is four
# tiles (few enough OpenMP barriers to stay fast when other processes load the
# cores), small next to N² for large N. Measured (docs/benchmarks.md): 2^20 to
# 2^22 equally fast on one thread, 2^22 clearly faster on two loaded cores; the
# masked half of the diagonal tiles ("upper") costs less than more, smaller tiles.
BLOCK_ELEMENTS = 1 << 22
# The widest column block: wider tiles make too skinny a GEMM when N is large.
BLOCK_COLUMNS = 4096
# Forward tiles kept for backward when they all fit: 2^26 float32 = 256 MiB.
SAVED_ELEMENTS = 1 << 26
# exp(l) unshifted is exact when |l| <= limit: e^60 times 2^31 terms stays below
# float32's 3.4e38 and e^-60 above its smallest normal number; likewise 600 for float64.
UNSHIFTED_LIMIT = {torch.float32: 60.0, torch.float64: 600.0}


@dataclass(frozen=True)
class _Layout:
    """Which pairs enter, how the logits are clamped, and the tile shape."""

    mask: Mask = "none"
    offset: int = 0
    clamp_max: float | None = None
    block_rows: int | None = None
    block_columns: int | None = None


@dataclass(frozen=True)
class _Tile:
    r0: int
    r1: int
    c0: int
    c1: int


def tile_shape(n_columns: int, block_rows: int | None = None, block_columns: int | None = None) -> tuple[int, int]:
    """(rows, columns) of one tile: at most ``BLOCK_COLUMNS`` columns, about ``BLOCK_ELEMENTS`` elements in all.

    The one tiling policy of every engine (log-sum-exp, hardest negatives, softplus sums).
    """
    columns = block_columns or max(1, min(n_columns, BLOCK_COLUMNS))
    rows = block_rows or max(1, BLOCK_ELEMENTS // max(1, columns))
    return max(1, int(rows)), max(1, int(columns))


def _tile_shape(layout: _Layout, n_columns: int) -> tuple[int, int]:
    return tile_shape(n_columns, layout.block_rows, layout.block_columns)


def _tiles(layout: _Layout, n_rows: int, n_columns: int) -> Iterator[_Tile]:
    """The tiles covering every allowed pair (tiles with none are skipped)."""
    block_rows, block_columns = _tile_shape(layout, n_columns)
    for r0 in range(0, n_rows, block_rows):
        r1 = min(r0 + block_rows, n_rows)
        # In "upper" mode row r0 pairs only with columns after r0 + offset.
        first = max(0, r0 + layout.offset + 1) if layout.mask == "upper" else 0
        for c0 in range(first, n_columns, block_columns):
            yield _Tile(r0, r1, c0, min(c0 + block_columns, n_columns))


class _Scratch:
    """One reusable tile-sized buffer: recomputed tiles need no fresh allocation (and page faults) each."""

    def __init__(self) -> None:
        self.buffer: torch.Tensor | None = None

    def tile(self, like: torch.Tensor, tile: _Tile) -> torch.Tensor:
        size = (tile.r1 - tile.r0) * (tile.c1 - tile.c0)
        if self.buffer is None or self.buffer.numel() < size:
            self.buffer = like.new_empty(size)
        return self.buffer[:size].view(tile.r1 - tile.r0, tile.c1 - tile.c0)


def _logits(
    rows: torch.Tensor, columns: torch.Tensor, layout: _Layout, tile: _Tile, out: torch.Tensor | None = None
) -> torch.Tensor:
    """r_iᵀc_j for the tile (into ``out`` if given), clamped if asked, with excluded pairs at -inf."""
    if out is None:
        logits = rows[tile.r0 : tile.r1] @ columns[tile.c0 : tile.c1].T
    else:
        logits = torch.mm(rows[tile.r0 : tile.r1], columns[tile.c0 : tile.c1].T, out=out)
    if layout.clamp_max is not None:
        logits.clamp_max_(layout.clamp_max)
    # Local entry (a, b) is global pair (r0 + a, c0 + b); the excluded pairs have b - a <= k (or == k).
    k = tile.r0 + layout.offset - tile.c0
    if layout.mask == "diagonal":
        logits.diagonal(k).fill_(-math.inf)
    elif layout.mask == "upper" and k > -logits.shape[0]:  # some entry of the tile has b - a <= k
        lower = torch.ones(logits.shape, dtype=torch.bool, device=logits.device).tril_(k)
        logits.masked_fill_(lower, -math.inf)
    return logits


def _unshifted_is_safe(rows: torch.Tensor, columns: torch.Tensor) -> bool:
    """Whether every logit provably lies within ±UNSHIFTED_LIMIT (one GPU sync)."""
    limit = UNSHIFTED_LIMIT.get(rows.dtype)
    if limit is None or rows.shape[0] == 0 or columns.shape[0] == 0:
        return False
    bound = torch.linalg.vector_norm(rows, dim=1).amax() * torch.linalg.vector_norm(columns, dim=1).amax()
    return float(bound) <= limit


def _finite_or_zero(values: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(values), values, torch.zeros_like(values))


def _tile_logsumexp(logits: torch.Tensor, dim: int) -> torch.Tensor:
    """Shifted log-sum-exp along ``dim``; -inf for an all-excluded line."""
    peak = _finite_or_zero(logits.amax(dim, keepdim=True))
    return (logits - peak).exp_().sum(dim).log_().add_(peak.squeeze(dim))


def _softmax_scale(grad: torch.Tensor | None, lse: torch.Tensor) -> torch.Tensor | None:
    """Grad · exp(-LSE): turns exp(l) into the gradient-weighted softmax; 0 where nothing was summed."""
    if grad is None:
        return None
    # An unshifted LSE is finite or -inf (nothing summed): NaN and +inf cannot occur.
    return torch.where(lse != -math.inf, grad * torch.exp(-lse), 0.0)


def tiled_logsumexp(
    rows: torch.Tensor,
    columns: torch.Tensor,
    *,
    row_lse: bool = True,
    column_lse: bool = False,
    mask: Mask = "none",
    offset: int = 0,
    clamp_max: float | None = None,
    block_rows: int | None = None,
    block_columns: int | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Row and/or column log-sum-exps of ``rows @ columns.T`` over a pair set, in O(N × block) memory.

    Differentiable in ``rows`` and ``columns`` (custom backward, recomputing tiles).

    Args:
        rows: (n, e) anchor vectors (temperature etc. already folded in).
        columns: (m, e) candidate vectors, same dtype and device.
        row_lse: return ``LSE_j l_ij`` over each row's allowed pairs (-inf for a row with none).
        column_lse: return ``LSE_i l_ij`` over each column's allowed pairs.
        mask: ``"none"`` (all pairs), ``"diagonal"`` (all but j = i + offset) or
            ``"upper"`` (only j > i + offset).
        offset: global index of row 0 minus that of column 0, for the masks.
        clamp_max: clamp each logit at this value first (uniformity: -t·d² <= 0).
        block_rows: rows per tile (default: ``BLOCK_ELEMENTS / block_columns``).
        block_columns: columns per tile (default: all, up to ``BLOCK_COLUMNS``).

    Returns:
        ``(row LSE of shape (n,) or None, column LSE of shape (m,) or None)``.

    Examples:
        >>> import torch
        >>> r, c = torch.randn(5, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
        >>> rows, cols = tiled_logsumexp(r, c, column_lse=True, block_rows=2, block_columns=3)
        >>> torch.allclose(rows, torch.logsumexp(r @ c.T, 1)), torch.allclose(cols, torch.logsumexp(r @ c.T, 0))
        (True, True)
    """
    if rows.dim() != 2 or columns.dim() != 2 or rows.shape[1] != columns.shape[1]:
        shapes = f"{tuple(rows.shape)} and {tuple(columns.shape)}"
        raise ValueError(f"rows and columns must be (n, e) and (m, e) matrices, got {shapes}")
    if mask not in ("none", "diagonal", "upper"):
        raise ValueError(f"mask must be 'none', 'diagonal' or 'upper', got {mask!r}")
    layout = _Layout(mask, int(offset), clamp_max, block_rows, block_columns)
    row_values, column_values = _TiledLogSumExp.apply(rows, columns, layout, bool(row_lse), bool(column_lse))
    return (row_values if row_lse else None), (column_values if column_lse else None)


class _TiledLogSumExp(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, rows: torch.Tensor, columns: torch.Tensor, layout: _Layout, want_rows: bool, want_columns: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.set_materialize_grads(False)
        n, m = rows.shape[0], columns.shape[0]
        with torch.no_grad():
            tiles = list(_tiles(layout, n, m))
            fast = _unshifted_is_safe(rows, columns)
            # One tile holding every row (and every column if their sums are wanted): the small batches.
            whole = len(tiles) == 1 and (tiles[0].r0, tiles[0].r1) == (0, n)
            whole = whole and (not want_columns or (tiles[0].c0, tiles[0].c1) == (0, m))
            if whole and fast and any(ctx.needs_input_grad[:2]):
                # The same operations as the loop below, without its per-tile bookkeeping (at N = 256 that
                # costs as much as the arithmetic); the results are bitwise those of the loop.
                exp = _logits(rows, columns, layout, tiles[0]).exp_()
                row_out = exp.sum(1).log_() if want_rows else rows.new_zeros(n).log_()
                column_out = exp.sum(0).log_() if want_columns else rows.new_zeros(m).log_()
                return _TiledLogSumExp._saved(
                    ctx, rows, columns, row_out, column_out, layout, [exp], want_rows, want_columns
                )
            # Keep the exp tiles only if a backward will come (not under no_grad, e.g. for metrics).
            keep = (
                fast
                and any(ctx.needs_input_grad[:2])
                and sum((t.r1 - t.r0) * (t.c1 - t.c0) for t in tiles) <= SAVED_ELEMENTS
            )
            kept: list[torch.Tensor] = []
            scratch = _Scratch()
            if fast:
                row_sum, column_sum = rows.new_zeros(n), rows.new_zeros(m)
            else:
                row_out, column_out = rows.new_full((n,), -math.inf), rows.new_full((m,), -math.inf)
            for tile in tiles:
                logits = _logits(rows, columns, layout, tile, out=None if keep else scratch.tile(rows, tile))
                if fast:
                    exp = logits.exp_()
                    if want_rows:
                        row_sum[tile.r0 : tile.r1] += exp.sum(1)
                    if want_columns:
                        column_sum[tile.c0 : tile.c1] += exp.sum(0)
                    if keep:
                        kept.append(exp)
                    continue
                if want_rows:
                    part = row_out[tile.r0 : tile.r1]
                    torch.logaddexp(part, _tile_logsumexp(logits, 1), out=part)
                if want_columns:
                    part = column_out[tile.c0 : tile.c1]
                    torch.logaddexp(part, _tile_logsumexp(logits, 0), out=part)
            if fast:
                row_out, column_out = row_sum.log_(), column_sum.log_()
        return _TiledLogSumExp._saved(
            ctx, rows, columns, row_out, column_out, layout, kept if keep else None, want_rows, want_columns, fast
        )

    @staticmethod
    def _saved(
        ctx: Any,
        rows: torch.Tensor,
        columns: torch.Tensor,
        row_out: torch.Tensor,
        column_out: torch.Tensor,
        layout: _Layout,
        kept: list[torch.Tensor] | None,
        want_rows: bool,
        want_columns: bool,
        fast: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Save what backward needs; the outputs not asked for are marked non-differentiable."""
        ctx.save_for_backward(rows, columns, row_out, column_out)
        ctx.layout, ctx.fast, ctx.kept = layout, fast, kept
        if not want_rows:
            ctx.mark_non_differentiable(row_out)
        if not want_columns:
            ctx.mark_non_differentiable(column_out)
        return row_out, column_out

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad_row: torch.Tensor | None, grad_column: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        rows, columns, row_out, column_out = ctx.saved_tensors
        need_rows, need_columns = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_rows = torch.zeros_like(rows) if need_rows else None
        grad_columns = torch.zeros_like(columns) if need_columns else None
        if (grad_row is None and grad_column is None) or not (need_rows or need_columns):
            return grad_rows, grad_columns, None, None, None
        # In the unshifted form d(loss)/d(l_ij) = exp(l_ij) · (a_i + b_j).
        a = _softmax_scale(grad_row, row_out) if ctx.fast else None
        b = _softmax_scale(grad_column, column_out) if ctx.fast else None
        logits_buffer, weights_buffer = _Scratch(), _Scratch()
        for index, tile in enumerate(_tiles(ctx.layout, rows.shape[0], columns.shape[0])):
            r, c = rows[tile.r0 : tile.r1], columns[tile.c0 : tile.c1]
            if not ctx.fast:
                logits = _logits(rows, columns, ctx.layout, tile, out=logits_buffer.tile(rows, tile))
                weights = _shifted_weights(logits, grad_row, grad_column, row_out, column_out, tile, weights_buffer)
                _accumulate(grad_rows, grad_columns, weights, r, c, tile)
                continue
            if ctx.kept is not None:
                exp = ctx.kept[index]
            else:
                exp = _logits(rows, columns, ctx.layout, tile, out=logits_buffer.tile(rows, tile)).exp_()
            a_tile = None if a is None else a[tile.r0 : tile.r1, None]
            b_tile = None if b is None else b[tile.c0 : tile.c1, None]
            if a_tile is not None and b_tile is not None:
                # G = E ⊙ (a 1ᵀ + 1 bᵀ): two passes into a reused buffer, then the two GEMMs.
                weights = torch.mul(exp, a_tile, out=weights_buffer.tile(rows, tile)).addcmul_(exp, b_tile.T)
                _accumulate(grad_rows, grad_columns, weights, r, c, tile)
            elif a_tile is not None:
                # G = diag(a) E: scale the thin GEMM operand or result instead of the tile.
                if grad_rows is not None:
                    grad_rows[tile.r0 : tile.r1] += a_tile * (exp @ c)
                if grad_columns is not None:
                    grad_columns[tile.c0 : tile.c1].addmm_(exp.T, a_tile * r)
            elif b_tile is not None:
                if grad_rows is not None:
                    grad_rows[tile.r0 : tile.r1].addmm_(exp, b_tile * c)
                if grad_columns is not None:
                    grad_columns[tile.c0 : tile.c1] += b_tile * (exp.T @ r)
        ctx.kept = None  # a second backward (retain_graph) recomputes the tiles
        return grad_rows, grad_columns, None, None, None


def _shifted_weights(
    logits: torch.Tensor,
    grad_row: torch.Tensor | None,
    grad_column: torch.Tensor | None,
    row_out: torch.Tensor,
    column_out: torch.Tensor,
    tile: _Tile,
    buffer: _Scratch,
) -> torch.Tensor:
    """G = g_i exp(l_ij - rowLSE_i) + h_j exp(l_ij - colLSE_j): each direction with its own normaliser."""
    weights = buffer.tile(logits, tile).zero_()
    if grad_row is not None:
        shift = _finite_or_zero(row_out[tile.r0 : tile.r1, None])
        weights.addcmul_((logits - shift).exp_(), grad_row[tile.r0 : tile.r1, None])
    if grad_column is not None:
        shift = _finite_or_zero(column_out[None, tile.c0 : tile.c1])
        weights.addcmul_((logits - shift).exp_(), grad_column[None, tile.c0 : tile.c1])
    return weights


def _accumulate(
    grad_rows: torch.Tensor | None,
    grad_columns: torch.Tensor | None,
    weights: torch.Tensor,
    r: torch.Tensor,
    c: torch.Tensor,
    tile: _Tile,
) -> None:
    """Grad r += G c and grad c += Gᵀ r for one tile's logit gradients G."""
    if grad_rows is not None:
        grad_rows[tile.r0 : tile.r1].addmm_(weights, c)
    if grad_columns is not None:
        grad_columns[tile.c0 : tile.c1].addmm_(weights.T, r)
