"""Uniformity loss of Wang & Isola (2020): log E exp(-t ||f(x) - f(y)||²) over data pairs."""

from __future__ import annotations

import math

import torch
from torch import nn

from .._numerics import full_precision, upcast
from .._validation import check_features, check_queue
from ._pairs import check_scale, scale_value
from ._pairwise import pair_count, pairwise_logsumexp


@full_precision
def uniform_loss(
    x: torch.Tensor,
    t: float | torch.Tensor = 2.0,
    queue: torch.Tensor | None = None,
    intra_batch: bool = True,
    normalize: bool = False,
    block_rows: int | None = None,
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
    # Without a queue the pairs are the batch's own; with one, a single row still pairs with the queue.
    x = check_features(x, "x", normalize=normalize, min_rows=2 if queue is None else 1)
    queue = check_queue(queue, x, normalize=normalize)
    if queue is None and not intra_batch:
        raise ValueError("uniform_loss with intra_batch=False needs a queue: there would be no pairs")
    x, queue = upcast(x, queue)
    count = pair_count(x.shape[0], 0 if queue is None else queue.shape[0], intra_batch)
    return pairwise_logsumexp(x, t, queue, intra_batch, block_rows) - math.log(count)


def two_view_uniform_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    t: float | torch.Tensor = 2.0,
    queue: torch.Tensor | None = None,
    intra_batch: bool = True,
    normalize: bool = False,
) -> torch.Tensor:
    """The paper's training form: the mean of the two views' uniformity losses."""
    return (uniform_loss(x, t, queue, intra_batch, normalize) + uniform_loss(y, t, queue, intra_batch, normalize)) / 2


class UniformLoss(nn.Module):
    """Module form of :func:`uniform_loss`.

    Called with one view it returns that view's loss; called with two views it
    returns their mean, ``(L_uniform(x) + L_uniform(y)) / 2``, as the paper trains.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import UniformLoss
        >>> x, y = F.normalize(torch.randn(2, 64, 16), dim=-1)
        >>> loss = UniformLoss(t=2)(x, y)
    """

    def __init__(self, t: float | torch.Tensor = 2.0, intra_batch: bool = True, normalize: bool = False) -> None:
        super().__init__()
        checked = check_scale(t, "t")
        self.t = t if isinstance(t, torch.Tensor) else checked
        self.intra_batch = intra_batch
        self.normalize = normalize

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, queue: torch.Tensor | None = None
    ) -> torch.Tensor:
        if y is None:
            return uniform_loss(x, self.t, queue, self.intra_batch, self.normalize)
        return two_view_uniform_loss(x, y, self.t, queue, self.intra_batch, self.normalize)

    def extra_repr(self) -> str:
        return f"t={scale_value(self.t):g}, intra_batch={self.intra_batch}"
