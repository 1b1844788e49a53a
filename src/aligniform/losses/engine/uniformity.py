"""Uniformity's pair sum: log Σ exp(-t ||a - b||²) over a set's pairs (and a queue), through the log-sum-exp engine.

The squared distances come from one GEMM per tile of augmented vectors (:func:`as_rows`, :func:`as_columns`), so
uniformity is the engine's "upper" triangle of a single set, clamped at 0 (a distance is never negative).
"""

from __future__ import annotations

import torch

from .logsumexp import tiled_logsumexp


def pair_count(n: int, queue_size: int, intra_batch: bool) -> int:
    """Number of pairs entering the mean: x-to-queue pairs plus i < j batch pairs."""
    return n * queue_size + (n * (n - 1) // 2 if intra_batch else 0)


def as_rows(x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """[2t·x, -t||x||², -t]: its product with :func:`as_columns` of c is -t ||x - c||²."""
    ones = torch.ones_like(x[:, :1])
    return torch.cat([2 * t * x, -t * x.pow(2).sum(1, keepdim=True), -t * ones], 1)


def as_columns(c: torch.Tensor) -> torch.Tensor:
    """[c, 1, ||c||²]; one GEMM against :func:`as_rows` gives the scaled negative squared distances."""
    return torch.cat([c, torch.ones_like(c[:, :1]), c.pow(2).sum(1, keepdim=True)], 1)


def pairwise_logsumexp(
    x: torch.Tensor,
    t: float | torch.Tensor,
    queue: torch.Tensor | None = None,
    intra_batch: bool = True,
    block_rows: int | None = None,
) -> torch.Tensor:
    """Log Σ exp(-t ||a - b||²) over the pairs of :func:`pair_count`, differentiable in x (and t).

    One GEMM per tile gives -t||a - b||² directly from the augmented vectors of
    :func:`as_rows` and :func:`as_columns`; the batch pairs are the "upper"
    tiles (each i < j once), the queue pairs a plain rectangle.

    Args:
        x: (N, d) features (already validated).
        t: positive scale, a float or a 0-dim tensor (learnable).
        queue: optional (K, d) features without gradient.
        intra_batch: include the i < j pairs of x.
        block_rows: rows per tile.

    Returns:
        A 0-dim tensor (the log of the SUM over pairs, not the mean).
    """
    rows = as_rows(x, t)
    parts = []
    if intra_batch and x.shape[0] > 1:
        lse, _ = tiled_logsumexp(rows, as_columns(x), mask="upper", clamp_max=0.0, block_rows=block_rows)
        assert lse is not None
        # The last row has no j > i: its -inf gets zero weight, but keep it out of the graph.
        parts.append(torch.logsumexp(lse[:-1], 0))
    if queue is not None:
        lse, _ = tiled_logsumexp(rows, as_columns(queue.detach()), clamp_max=0.0, block_rows=block_rows)
        assert lse is not None
        parts.append(torch.logsumexp(lse, 0))
    if not parts:
        raise ValueError("no pairs: uniformity needs N >= 2 or a queue")
    return parts[0] if len(parts) == 1 else torch.logsumexp(torch.stack(parts), 0)
