"""SimCLR's candidate set, on the tiled engine: each of the 2N views against the other views.

SupCon, the decoupled and the debiased losses all take, for every anchor z_a of
z = [x; y], a log-sum-exp of z_aᵀz_b / τ over the other views z_b (optionally
without the anchor's positive, its other view) plus any queue rows. Rather than
one (2N × 2N) pass with two excluded entries per row, the pairs are split into
three blocks, each one engine call whose mask excludes exactly what must go:

* x against y: row and column log-sum-exps of the same tiles give both
  directions (x_i over y_j and y_j over x_i); the positive pairs (x_i, y_i) are
  the diagonal, masked out when the positive leaves the denominator;
* x against x and y against y: the upper triangle only (each pair once, its
  row and column log-sum-exps give both anchors), so the anchor itself is out.

The parts combine by log-sum-exp, never by subtracting exps, so an excluded term
is exactly absent whatever its size.

Sharded (``shard=``, under ``torchrun``; see :mod:`aligniform.losses.global_batch`),
this rank's anchors x_r, y_r meet the gathered views: x_r against Y gives x_r's
cross part (final) and, from the same tiles' columns, every y_j's partial part,
combined over the ranks; the same-view pairs of X (and of Y) are split evenly
over the ranks by :func:`~aligniform.losses.engine.balanced_pairs_logsumexp`.
So each rank does 1/P of the pair work, and the result is this rank's anchors'
log-sum-exps over the whole global batch.
"""

from __future__ import annotations

import torch

from .engine import Mask, balanced_pairs_logsumexp, combine_logsumexp, tiled_logsumexp
from .global_batch import Shard


def other_views_logsumexp(
    x: torch.Tensor,
    y: torch.Tensor,
    scale: float | torch.Tensor,
    queue: torch.Tensor | None = None,
    positive: bool = True,
    shard: Shard | None = None,
) -> torch.Tensor:
    """Per anchor of z = [x; y]: ``LSE_b z_aᵀz_b / scale`` over the other views (and the queue rows).

    Args:
        x: (N, d) first views.
        y: (N, d) second views.
        scale: the divisor of the similarities (the temperature), a number or a 0-dim tensor.
        queue: optional (K, d) extra candidates of every anchor (no gradient).
        positive: include the anchor's other view (x_i for y_i and y_i for x_i);
            ``False`` leaves it out exactly.
        shard: x and y are this rank's rows of the global batch; the candidates are every rank's views.

    Returns:
        (2N,) log-sum-exps, anchors x first then y (with a shard: this rank's 2 n_r); -inf for an anchor with
        no candidate.
    """
    x_anchors, y_anchors = x / scale, y / scale
    if shard is not None:
        lse = _sharded(x, y, x_anchors, y_anchors, positive, shard)
    else:
        lse = _one_process(x, y, x_anchors, y_anchors, positive)
    if queue is not None:
        queue_lse, _ = tiled_logsumexp(torch.cat([x_anchors, y_anchors]), queue)
        assert queue_lse is not None
        lse = torch.logaddexp(lse, queue_lse)
    return lse


def _one_process(
    x: torch.Tensor, y: torch.Tensor, x_anchors: torch.Tensor, y_anchors: torch.Tensor, positive: bool
) -> torch.Tensor:
    cross_rows, cross_columns = tiled_logsumexp(x_anchors, y, column_lse=True, mask="none" if positive else "diagonal")
    xx_rows, xx_columns = tiled_logsumexp(x_anchors, x, column_lse=True, mask="upper")
    yy_rows, yy_columns = tiled_logsumexp(y_anchors, y, column_lse=True, mask="upper")
    assert cross_rows is not None and cross_columns is not None
    assert xx_rows is not None and xx_columns is not None and yy_rows is not None and yy_columns is not None
    # Anchor x_i's same-view pairs j > i came in as its row of the upper triangle, j < i as its column.
    return torch.cat(
        [combine_logsumexp([cross_rows, xx_rows, xx_columns]), combine_logsumexp([cross_columns, yy_rows, yy_columns])]
    )


def _sharded(
    x: torch.Tensor, y: torch.Tensor, x_anchors: torch.Tensor, y_anchors: torch.Tensor, positive: bool, shard: Shard
) -> torch.Tensor:
    all_x, all_y = shard.gather(x), shard.gather(y)
    mask: Mask = "none" if positive else "diagonal"
    cross_rows, cross_columns = tiled_logsumexp(x_anchors, all_y, column_lse=True, mask=mask, offset=shard.start)
    assert cross_rows is not None and cross_columns is not None
    same_view = []
    for anchors, points in ((x_anchors, all_x), (y_anchors, all_y)):
        _, partial = balanced_pairs_logsumexp(anchors, points, shard.counts, shard, column_lse=True)
        assert partial is not None
        same_view.append(shard.local(shard.logsumexp(partial)))
    return torch.cat(
        [
            torch.logaddexp(cross_rows, same_view[0]),
            torch.logaddexp(shard.local(shard.logsumexp(cross_columns)), same_view[1]),
        ]
    )
