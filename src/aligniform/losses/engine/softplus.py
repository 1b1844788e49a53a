"""Σ softplus over the pairs of a block of logits, tile by tile: the engine's form for SigLIP's sigmoid loss."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .logsumexp import SAVED_ELEMENTS, tile_shape

# softplus(u) = u exactly (to rounding) above these: log1p(e^-u) is below half an ulp of u.
_SOFTPLUS_THRESHOLD = {torch.float32: 20.0, torch.float64: 40.0}


def _tiles(n_rows: int, n_columns: int) -> list[tuple[int, int, int, int]]:
    rows, columns = tile_shape(n_columns)
    return [
        (r0, min(r0 + rows, n_rows), c0, min(c0 + columns, n_columns))
        for r0 in range(0, n_rows, rows)
        for c0 in range(0, n_columns, columns)
    ]


def _signed_logits(
    rows: torch.Tensor, columns: torch.Tensor, tile: tuple[int, int, int, int], offset: int
) -> torch.Tensor:
    """−z_ij·l_ij for the tile: the logit for a negative pair, minus it for a positive one (j = i + offset)."""
    r0, r1, c0, c1 = tile
    logits = rows[r0:r1] @ columns[c0:c1].T
    logits.diagonal(r0 + offset - c0).neg_()
    return logits


def tiled_softplus_sum(rows: torch.Tensor, columns: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """Σ_ij softplus(−z_ij r_iᵀc_j), z_ij = +1 for j = i + offset and −1 otherwise, in O(N × block) memory.

    The sum of −log σ(z_ij l_ij) over a (rows × columns) block of pair logits
    l_ij = r_iᵀc_j, one tile at a time; backward recomputes each tile
    (d/dl_ij = −z_ij σ(−z_ij l_ij)) and accumulates two GEMMs per tile.
    ``offset`` places the positive pairs as in :func:`~aligniform.losses.engine.tiled_logsumexp`:
    the global index of row 0 minus that of column 0.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> r, c = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
        >>> signs = 2 * torch.eye(5, dtype=torch.float64) - 1
        >>> torch.allclose(tiled_softplus_sum(r, c), F.softplus(-signs * (r @ c.T)).sum())
        True
    """
    total: torch.Tensor = _TiledSoftplusSum.apply(rows, columns, int(offset))
    return total


class _TiledSoftplusSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, rows: torch.Tensor, columns: torch.Tensor, offset: int) -> torch.Tensor:
        threshold = _SOFTPLUS_THRESHOLD.get(rows.dtype, 20.0)
        total = rows.new_zeros(())
        tiles = _tiles(rows.shape[0], columns.shape[0])
        # Keep the signed logits for backward when they all fit (as the log-sum-exp engine keeps its tiles):
        # backward then skips the recomputing GEMM, and the same floats give the same gradient.
        keep = (
            any(ctx.needs_input_grad[:2]) and sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in tiles) <= SAVED_ELEMENTS
        )
        kept = []
        with torch.no_grad():
            for tile in tiles:
                signed = _signed_logits(rows, columns, tile, offset)
                total += F.softplus(signed, threshold=threshold).sum()
                if keep:
                    kept.append(signed)
        ctx.save_for_backward(rows, columns)
        ctx.offset, ctx.kept = offset, (kept if keep else None)
        return total

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        rows, columns = ctx.saved_tensors
        need_rows, need_columns = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        tiles = _tiles(rows.shape[0], columns.shape[0])
        kept, ctx.kept = ctx.kept, None  # a second backward (retain_graph) recomputes the tiles
        if len(tiles) == 1:  # one tile: each gradient is its GEMM alone (zeros plus the product is the product)
            weights = _weights(rows, columns, tiles[0], ctx.offset, grad, kept[0] if kept else None)
            return (weights @ columns if need_rows else None), (weights.T @ rows if need_columns else None), None
        grad_rows = torch.zeros_like(rows) if need_rows else None
        grad_columns = torch.zeros_like(columns) if need_columns else None
        for index, tile in enumerate(tiles):
            r0, r1, c0, c1 = tile
            weights = _weights(rows, columns, tile, ctx.offset, grad, kept[index] if kept else None)
            if grad_rows is not None:
                grad_rows[r0:r1].addmm_(weights, columns[c0:c1])
            if grad_columns is not None:
                grad_columns[c0:c1].addmm_(weights.T, rows[r0:r1])
        return grad_rows, grad_columns, None


def _weights(
    rows: torch.Tensor,
    columns: torch.Tensor,
    tile: tuple[int, int, int, int],
    offset: int,
    grad: torch.Tensor,
    kept: torch.Tensor | None,
) -> torch.Tensor:
    """d(loss)/d(l_ij) for the tile, from its kept signed logits (consumed in place) or recomputed."""
    r0, _, c0, _ = tile
    # d softplus(m)/dm = σ(m); m = −z·l, so d/dl = −z σ(m): σ(m) off the positives, −σ(m) on them.
    weights = (kept if kept is not None else _signed_logits(rows, columns, tile, offset)).sigmoid_()
    weights.diagonal(r0 + offset - c0).neg_()
    return weights.mul_(grad)
