"""Uniformity loss of Wang & Isola (2020): log E exp(-t ||f(x) - f(y)||²) over data pairs."""

from __future__ import annotations

import math

import torch

from .._numerics import full_precision, upcast
from .._validation import check_features, check_optional_positive_int, check_queue
from .base import Loss
from .candidates import check_scale, scale_argument, scale_value
from .engine import as_columns, as_rows, balanced_pairs_logsumexp, pair_count, pairwise_logsumexp, tiled_logsumexp
from .engine.fused import fused_uniformity
from .global_batch import Shard, batch_size, checked_inputs


@full_precision
def uniform_loss(
    x: torch.Tensor,
    t: float | torch.Tensor = 2.0,
    queue: torch.Tensor | None = None,
    intra_batch: bool = True,
    normalize: bool = False,
    block_rows: int | None = None,
    shard: Shard | None = None,
) -> torch.Tensor:
    """Log of the mean Gaussian potential exp(-t ||x_i - x_j||²) over pairs.

    The mean runs over all distinct pairs i < j of ``x`` (one view). With a
    ``queue`` (MoCo), it runs over every (x_i, queue_k) pair, plus the i < j
    batch pairs when ``intra_batch`` is true. It is computed exactly, as a
    log-sum-exp over row blocks, in O(N × block) memory: N = 65,536 works on a
    laptop. Values lie in [-4t, 0]; 0 means collapse. Uniform features give about -2t in high dimension,
    and log((1 - e^(-4t)) / (4t)) on the 2-sphere (d = 3): -2.08 for t = 2.

    Args:
        x: (N, d) L2-normalised features; N >= 2 unless a queue is given.
        t: positive scale of the Gaussian potential (paper default 2): a number or a
            0-dim tensor with gradient (learnable).
        queue: optional (K, d) past features used as extra points (no gradient).
        intra_batch: with a queue, also include the batch's own i < j pairs.
        normalize: L2-normalise x (and the queue) first instead of requiring unit norm.
        block_rows: rows per tile; the default keeps each tile near 4M elements.
        shard: under ``torchrun``, x is this rank's rows of the global batch;
            the ranks split the pairs evenly and combine their partial sums by a
            log-sum-exp over ranks (see :func:`aligniform.distributed.global_loss`).

    Returns:
        Scalar tensor.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import uniform_loss
        >>> x = F.normalize(torch.randn(512, 3), dim=1)  # close to uniform on the 2-sphere
        >>> -2.2 < float(uniform_loss(x, t=2)) < -2.0
        True
    """
    t = check_scale(t, "t")
    block_rows = check_optional_positive_int(block_rows, "block_rows")
    # Without a queue the pairs are the batch's own; with one, a single row still pairs with the queue.
    min_rows = 2 if queue is None else 1

    def check() -> tuple[torch.Tensor, torch.Tensor | None]:
        checked = check_features(x, "x", normalize=normalize, min_rows=min_rows if shard is None else 0)
        return checked, check_queue(queue, checked, normalize=normalize)

    x, queue = upcast(*checked_inputs(shard, check, min_rows))
    if queue is None and not intra_batch:
        raise ValueError("uniform_loss with intra_batch=False needs a queue: there would be no pairs")
    count = pair_count(batch_size(x, shard), 0 if queue is None else queue.shape[0], intra_batch)
    if shard is not None:
        return _sharded_pair_logsumexp(x, t, queue, intra_batch, shard) - math.log(count)
    if queue is None:
        # A batch whose pairs are one tile: one fused node, bitwise the tiled path's value and gradients.
        fused = fused_uniformity(x, t, math.log(count), block_rows)
        if fused is not None:
            return fused
    return pairwise_logsumexp(x, t, queue, intra_batch, block_rows) - math.log(count)


def _sharded_pair_logsumexp(
    x: torch.Tensor, t: float | torch.Tensor, queue: torch.Tensor | None, intra_batch: bool, shard: Shard
) -> torch.Tensor:
    """:func:`pairwise_logsumexp` of the global batch: this rank's share of the pairs, combined over ranks."""
    rows = as_rows(x, t)
    # Exactly 0, but it keeps this rank's rows and the gathered batch in the graph whatever its share of the pairs
    # (none, with one row): every rank's backward then runs the gather's and shard.logsumexp's collectives, which
    # the other ranks wait in.
    in_graph = rows.sum() * 0
    parts = []
    if intra_batch:
        columns = as_columns(shard.gather(x))
        in_graph = in_graph + columns.sum() * 0
        row, _ = balanced_pairs_logsumexp(rows, columns, shard.counts, shard, clamp_max=0.0)
        parts.append(row[torch.isfinite(row)])  # a block's last point may have no pair here
    if queue is not None:
        queue_rows, _ = tiled_logsumexp(rows, as_columns(queue.detach()), clamp_max=0.0)
        assert queue_rows is not None
        parts.append(queue_rows)
    values = torch.cat(parts)
    local = torch.logsumexp(values, 0) + in_graph if values.numel() else in_graph - math.inf
    return shard.logsumexp(local)


def two_view_uniform_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    t: float | torch.Tensor = 2.0,
    queue: torch.Tensor | None = None,
    intra_batch: bool = True,
    normalize: bool = False,
    shard: Shard | None = None,
) -> torch.Tensor:
    """The paper's training form: the mean of the two views' uniformity losses."""
    first = uniform_loss(x, t, queue, intra_batch, normalize, shard=shard)
    return (first + uniform_loss(y, t, queue, intra_batch, normalize, shard=shard)) / 2


class UniformLoss(Loss):
    """Module form of :func:`uniform_loss`.

    Called with one view it returns that view's loss; called with two views it
    returns their mean, ``(L_uniform(x) + L_uniform(y)) / 2``, as the paper trains.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import UniformLoss
        >>> x, y = F.normalize(torch.randn(2, 64, 16), dim=-1)
        >>> loss = UniformLoss(t=2)(x, y)
    """

    term = "uniform"
    takes_queue = True
    moco_keys = False  # MoCo: uniformity of the queries only (the keys carry no gradient), the authors' form

    def __init__(self, t: float | torch.Tensor = 2.0, intra_batch: bool = True, normalize: bool = False) -> None:
        super().__init__()
        self.t = self.argument("t", t, scale_argument("t"))
        self.intra_batch = intra_batch
        self.normalize = normalize

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        queue: torch.Tensor | None = None,
        shard: Shard | None = None,
    ) -> torch.Tensor:
        if y is None:
            return uniform_loss(x, self.value("t"), queue, self.intra_batch, self.normalize, shard=shard)
        return two_view_uniform_loss(x, y, self.value("t"), queue, self.intra_batch, self.normalize, shard)

    def extra_repr(self) -> str:
        return f"t={scale_value(self.t):g}, intra_batch={self.intra_batch}"
