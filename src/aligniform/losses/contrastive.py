"""Symmetric in-batch InfoNCE, the contrastive baseline of Wang & Isola (2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._numerics import full_precision
from .._validation import check_positive
from ._pairs import directional_similarities, mean_over_directions, positive_pairs


@full_precision
def contrastive_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    tau: float = 0.1,
    queue: torch.Tensor | None = None,
    normalize: bool = False,
    symmetric: bool = True,
) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of positive pairs.

    For anchor x_i the positive is y_i and the negatives are y_j (j != i) and
    every queue row; the same with x and y swapped. Logits are uᵀv / tau and the
    loss is the mean of the 2N cross-entropy terms
    ``-log exp(s_ii/tau) / (exp(s_ii/tau) + Σ_neg exp(s_neg/tau))``.

    Args:
        x: (N, d) L2-normalised features of the first views.
        y: (N, d) L2-normalised features of the second views.
        tau: positive temperature.
        queue: optional (K, d) extra negatives for every anchor (MoCo); no gradient.
        normalize: L2-normalise the inputs first instead of requiring unit norm.
        symmetric: average both directions (the paper's form); ``False`` keeps only
            anchors x against [y, queue], MoCo's form (x = queries, y = keys).

    Returns:
        Scalar tensor.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import contrastive_loss
        >>> x = F.normalize(torch.randn(32, 16), dim=1)
        >>> y = F.normalize(x + 0.1 * torch.randn(32, 16), dim=1)
        >>> loss = contrastive_loss(x, y, tau=0.5)
    """
    tau = check_positive(tau, "tau")
    x, y, queue = positive_pairs(x, y, queue, normalize)
    targets = torch.arange(x.shape[0], device=x.device)
    similarities = directional_similarities(x, y, queue, symmetric)
    return mean_over_directions(lambda s: F.cross_entropy(s / tau, targets), similarities)


class ContrastiveLoss(nn.Module):
    """Module form of :func:`contrastive_loss`.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import ContrastiveLoss
        >>> x, y = F.normalize(torch.randn(2, 32, 16), dim=-1)
        >>> loss = ContrastiveLoss(tau=0.2)(x, y)
    """

    def __init__(self, tau: float = 0.1, normalize: bool = False):
        super().__init__()
        self.tau = check_positive(tau, "tau")
        self.normalize = normalize

    def forward(self, x, y, queue=None, symmetric: bool = True):
        return contrastive_loss(x, y, self.tau, queue, self.normalize, symmetric)

    def extra_repr(self) -> str:
        return f"tau={self.tau:g}"
