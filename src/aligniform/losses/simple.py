"""Simple and HardSimple losses of Wang & Liu (2021): linear in the similarities."""

from __future__ import annotations

import torch

from .._numerics import full_precision
from .._validation import check_fraction, check_positive
from .base import Loss
from .candidates import directions, negatives_per_anchor, positive_pairs, resolve_batch_negatives
from .engine import hardest_logsumexp, kept_negatives
from .engine.fused.pairs import fused_simple
from .global_batch import Shard, batch_size, mean_terms


@full_precision
def simple_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    lam: float,
    hard_alpha: float | None = None,
    queue: torch.Tensor | None = None,
    normalize: bool = False,
    symmetric: bool = True,
    batch_negatives: bool | None = None,
    shard: Shard | None = None,
) -> torch.Tensor:
    """Wang & Liu's Simple loss ``-s_ii + lam Σ_neg s_ik``, averaged over anchors.

    It penalises every negative equally (no hardness-aware softmax weights).
    The negatives are those of :func:`contrastive_loss` (symmetric in-batch, or
    MoCo's queue with ``symmetric=False`` and a queue). The plain sum is
    O(N·d): ``Σ_{j≠i} x_iᵀy_j = x_iᵀ(Σ_j y_j) - x_iᵀy_i``. With ``hard_alpha``
    it becomes HardSimple: the sum runs only over each anchor's upper-
    ``hard_alpha`` quantile of negatives, as in :func:`hard_contrastive_loss`
    (blocks of rows, O(N × block) memory).

    Args:
        x: (N, d) L2-normalised first views.
        y: (N, d) L2-normalised second views.
        lam: positive weight of the negative similarities.
        hard_alpha: optional fraction of negatives kept, in (0, 1].
        queue: optional (K, d) extra negatives (no gradient).
        normalize: L2-normalise the inputs first.
        symmetric: both directions; ``False``: queries x only.
        batch_negatives: as in :func:`contrastive_loss`.
        shard: x and y are this rank's rows of the global batch; each rank
            computes its anchors' terms (see :func:`aligniform.distributed.global_loss`).

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import simple_loss
        >>> x, y = F.normalize(torch.randn(2, 64, 16), dim=-1)
        >>> loss = simple_loss(x, y, lam=0.01, hard_alpha=0.1)
    """
    lam = check_positive(lam, "lam")
    if hard_alpha is not None:
        hard_alpha = check_fraction(hard_alpha, "hard_alpha")
    x, y, queue = positive_pairs(x, y, queue, normalize, shard)
    batch_negatives = resolve_batch_negatives(batch_negatives, queue, symmetric)
    total = negatives_per_anchor(batch_size(x, shard), queue, batch_negatives)
    kept = total if hard_alpha is None else kept_negatives(hard_alpha, total)
    queue_sum = None if queue is None else queue.sum(0)
    if kept >= total and batch_negatives and queue is None and shard is None and symmetric:
        # The plain symmetric in-batch loss: one fused node, bitwise the graph below's value and gradients.
        fused = fused_simple(x, y, lam)
        if fused is not None:
            return fused
    offset = 0 if shard is None else shard.start
    if kept >= total and batch_negatives:
        # Σ_j of each view over the global batch: one all-reduce of both sums.
        sums = torch.stack([x.sum(0), y.sum(0)])
        view_sums = dict(zip((id(x), id(y)), (sums if shard is None else shard.sum(sums)).unbind()))
    terms = []
    for anchors, others in directions(x, y, symmetric):
        positive = (anchors * others).sum(1)
        if kept < total:
            gathered = others if shard is None else shard.gather(others)
            candidates = ([gathered] if batch_negatives else []) + ([] if queue is None else [queue])
            columns = candidates[0] if len(candidates) == 1 else torch.cat(candidates)
            negatives = hardest_logsumexp(anchors, columns, kept, offset if batch_negatives else None, reduction="sum")
        else:
            negatives = torch.zeros_like(positive)
            if batch_negatives:
                negatives = anchors @ view_sums[id(others)] - positive
            if queue_sum is not None:
                negatives = negatives + anchors @ queue_sum
        terms.append(lam * negatives - positive)
    return mean_terms(torch.cat(terms), shard)


class SimpleLoss(Loss):
    """Module form of :func:`simple_loss`.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import SimpleLoss
        >>> x, y = F.normalize(torch.randn(2, 64, 16), dim=-1)
        >>> loss = SimpleLoss(lam=0.01)(x, y)
    """

    term = "simple"
    takes_queue = True
    directional = True

    def __init__(self, lam: float, hard_alpha: float | None = None, normalize: bool = False) -> None:
        super().__init__()
        self.lam = check_positive(lam, "lam")
        self.hard_alpha = None if hard_alpha is None else check_fraction(hard_alpha, "hard_alpha")
        self.normalize = normalize

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        queue: torch.Tensor | None = None,
        symmetric: bool = True,
        batch_negatives: bool | None = None,
        shard: Shard | None = None,
    ) -> torch.Tensor:
        return simple_loss(x, y, self.lam, self.hard_alpha, queue, self.normalize, symmetric, batch_negatives, shard)

    def extra_repr(self) -> str:
        return f"lam={self.lam:g}, hard_alpha={self.hard_alpha}"
