"""Hard contrastive loss of Wang & Liu (2021): InfoNCE over each anchor's hardest negatives."""

from __future__ import annotations

import math

import torch
from torch import nn

from .._numerics import full_precision
from .._validation import check_fraction, check_positive
from ._pairs import directional_similarities, hardest_negatives_mask, mean_over_directions, positive_pairs


def _hard_infonce(similarity: torch.Tensor, tau: float, alpha: float) -> torch.Tensor:
    n = similarity.shape[0]
    positive = similarity.diagonal()
    keep = hardest_negatives_mask(similarity, alpha)
    keep[:, :n].fill_diagonal_(True)  # the positive stays in the denominator
    logits = (similarity / tau).masked_fill(~keep, -math.inf)
    return (torch.logsumexp(logits, 1) - positive / tau).mean()


@full_precision
def hard_contrastive_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    tau: float,
    alpha: float,
    queue: torch.Tensor | None = None,
    normalize: bool = False,
    symmetric: bool = True,
) -> torch.Tensor:
    """InfoNCE whose denominator keeps only each anchor's hardest negatives.

    For anchor i with negative similarities s_ik, only the negatives with
    s_ik >= s_alpha^(i) (its upper-``alpha`` quantile: the ceil(alpha·M) most
    similar of M negatives) enter ``-log exp(s_ii/tau) / (exp(s_ii/tau) + Σ_kept exp(s_ik/tau))``.
    Symmetric like :func:`contrastive_loss` (x anchors against y, and y against
    x); with ``alpha = 1`` the two losses are equal.

    Args:
        x: (N, d) L2-normalised first views.
        y: (N, d) L2-normalised second views.
        tau: positive temperature.
        alpha: fraction of negatives kept, in (0, 1].
        queue: optional (K, d) extra negatives (no gradient).
        normalize: L2-normalise the inputs first.
        symmetric: both directions; ``False``: queries x only (MoCo).

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import hard_contrastive_loss
        >>> x, y = F.normalize(torch.randn(2, 64, 16), dim=-1)
        >>> loss = hard_contrastive_loss(x, y, tau=0.5, alpha=0.1)
    """
    tau = check_positive(tau, "tau")
    alpha = check_fraction(alpha, "alpha")
    x, y, queue = positive_pairs(x, y, queue, normalize)
    similarities = directional_similarities(x, y, queue, symmetric)
    return mean_over_directions(lambda s: _hard_infonce(s, tau, alpha), similarities)


class HardContrastiveLoss(nn.Module):
    """Module form of :func:`hard_contrastive_loss`.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import HardContrastiveLoss
        >>> x, y = F.normalize(torch.randn(2, 64, 16), dim=-1)
        >>> loss = HardContrastiveLoss(tau=0.5, alpha=0.1)(x, y)
    """

    def __init__(self, tau: float, alpha: float, normalize: bool = False):
        super().__init__()
        self.tau = check_positive(tau, "tau")
        self.alpha = check_fraction(alpha, "alpha")
        self.normalize = normalize

    def forward(self, x, y, queue=None, symmetric: bool = True):
        return hard_contrastive_loss(x, y, self.tau, self.alpha, queue, self.normalize, symmetric)

    def extra_repr(self) -> str:
        return f"tau={self.tau:g}, alpha={self.alpha:g}"
