"""Hard contrastive loss of Wang & Liu (2021): InfoNCE over each anchor's hardest negatives."""

from __future__ import annotations

import torch

from .._numerics import full_precision
from .._validation import check_fraction
from .base import Loss
from .candidates import (
    check_scale,
    directions,
    mean_softmax_terms,
    negatives_per_anchor,
    positive_pairs,
    resolve_batch_negatives,
    scale_argument,
    scale_value,
)
from .engine import PAIRED_ELEMENTS, hardest_logsumexp, hardest_logsumexp_both, kept_negatives
from .global_batch import Shard, batch_size, mean_terms


@full_precision
def hard_contrastive_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    tau: float | torch.Tensor,
    alpha: float,
    queue: torch.Tensor | None = None,
    normalize: bool = False,
    symmetric: bool = True,
    batch_negatives: bool | None = None,
    shard: Shard | None = None,
) -> torch.Tensor:
    """InfoNCE whose denominator keeps only each anchor's hardest negatives.

    For anchor i with M negative similarities s_ik, only the negatives with
    s_ik >= s_alpha^(i) (its upper-``alpha`` quantile: the ``ceil(alpha·M)`` most
    similar, computed exactly, plus ties at the threshold) enter
    ``-log exp(s_ii/tau) / (exp(s_ii/tau) + Σ_kept exp(s_ik/tau))``. The
    candidates are those of :func:`contrastive_loss` (symmetric in-batch, or
    MoCo's [own key, queue] with ``symmetric=False`` and a queue); with
    ``alpha = 1`` the two losses are equal. Exact, block of rows by block of
    rows, in O(N × block) memory.

    Args:
        x: (N, d) L2-normalised first views (MoCo: queries).
        y: (N, d) L2-normalised second views (MoCo: keys).
        tau: positive temperature (a number or a 0-dim tensor with gradient).
        alpha: fraction of negatives kept, in (0, 1].
        queue: optional (K, d) extra negatives (no gradient).
        normalize: L2-normalise the inputs first.
        symmetric: both directions; ``False``: queries x only.
        batch_negatives: as in :func:`contrastive_loss`.
        shard: x and y are this rank's rows of the global batch; each rank
            computes its anchors' terms (see :func:`aligniform.distributed.global_loss`).

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import hard_contrastive_loss
        >>> x, y = F.normalize(torch.randn(2, 64, 16), dim=-1)
        >>> loss = hard_contrastive_loss(x, y, tau=0.5, alpha=0.1)
    """
    tau = check_scale(tau, "tau")
    alpha = check_fraction(alpha, "alpha")
    x, y, queue = positive_pairs(x, y, queue, normalize, shard)
    batch_negatives = resolve_batch_negatives(batch_negatives, queue, symmetric)
    total = negatives_per_anchor(batch_size(x, shard), queue, batch_negatives)
    kept = kept_negatives(alpha, total)
    if kept >= total:  # every negative kept: exactly the contrastive loss
        return mean_softmax_terms(x, y, queue, tau, symmetric, batch_negatives, shard=shard)
    # A rank's anchors need whole rows of candidates (the threshold is per row): the other view, gathered.
    offset = 0 if shard is None else shard.start
    if symmetric and batch_negatives and queue is None and shard is None and x.shape[0] ** 2 <= PAIRED_ELEMENTS:
        # Both directions read the same matrix (its transpose): one GEMM, kept for backward.
        anchors = x / tau
        positive = (anchors * y).sum(1)
        row_part, column_part = hardest_logsumexp_both(anchors, y, kept)
        terms = [torch.logaddexp(positive, part) - positive for part in (row_part, column_part)]
        return mean_terms(torch.cat(terms), shard)
    terms = []
    for anchors, others in directions(x, y, symmetric):
        anchors = anchors / tau
        positive = (anchors * others).sum(1)
        candidates = [others if shard is None else shard.gather(others)] if batch_negatives else []
        candidates += [] if queue is None else [queue]
        columns = candidates[0] if len(candidates) == 1 else torch.cat(candidates)
        negatives = hardest_logsumexp(anchors, columns, kept, offset if batch_negatives else None)
        terms.append(torch.logaddexp(positive, negatives) - positive)
    return mean_terms(torch.cat(terms), shard)


class HardContrastiveLoss(Loss):
    """Module form of :func:`hard_contrastive_loss`.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import HardContrastiveLoss
        >>> x, y = F.normalize(torch.randn(2, 64, 16), dim=-1)
        >>> loss = HardContrastiveLoss(tau=0.5, alpha=0.1)(x, y)
    """

    term = "hard_contrastive"
    takes_queue = True
    directional = True

    def __init__(self, tau: float | torch.Tensor, alpha: float, normalize: bool = False) -> None:
        super().__init__()
        self.tau = self.argument("tau", tau, scale_argument("tau"))
        self.alpha = check_fraction(alpha, "alpha")
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
        return hard_contrastive_loss(
            x, y, self.value("tau"), self.alpha, queue, self.normalize, symmetric, batch_negatives, shard
        )

    def extra_repr(self) -> str:
        return f"tau={scale_value(self.tau):g}, alpha={self.alpha:g}"
