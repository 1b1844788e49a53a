"""Simple and HardSimple losses of Wang & Liu (2021): linear in the similarities."""

from __future__ import annotations

import torch
from torch import nn

from .._numerics import full_precision
from .._validation import check_fraction, check_positive
from ._pairs import directional_similarities, hardest_negatives_mask, mean_over_directions, positive_pairs


def _simple(similarity: torch.Tensor, lam: float, hard_alpha: float | None) -> torch.Tensor:
    positive = similarity.diagonal()
    if hard_alpha is None:
        negatives = similarity.sum(1) - positive
    else:
        negatives = (similarity * hardest_negatives_mask(similarity, hard_alpha)).sum(1)
    return (-positive + lam * negatives).mean()


@full_precision
def simple_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    lam: float,
    hard_alpha: float | None = None,
    queue: torch.Tensor | None = None,
    normalize: bool = False,
    symmetric: bool = True,
) -> torch.Tensor:
    """Wang & Liu's Simple loss ``-s_ii + lam Σ_{j≠i} s_ij``, averaged over anchors.

    It penalises every negative equally (no hardness-aware softmax weights).
    With ``hard_alpha`` it becomes HardSimple: the sum runs only over each
    anchor's upper-``hard_alpha`` quantile of negatives, as in
    :func:`hard_contrastive_loss`. Symmetric over the two views.

    Args:
        x: (N, d) L2-normalised first views.
        y: (N, d) L2-normalised second views.
        lam: positive weight of the negative similarities.
        hard_alpha: optional fraction of negatives kept, in (0, 1].
        queue: optional (K, d) extra negatives (no gradient).
        normalize: L2-normalise the inputs first.
        symmetric: both directions; ``False``: queries x only (MoCo).

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import simple_loss
        >>> x, y = F.normalize(torch.randn(2, 64, 16), dim=-1)
        >>> loss = simple_loss(x, y, lam=0.01, hard_alpha=0.1)
    """
    lam = check_positive(lam, "lam")
    if hard_alpha is not None:
        hard_alpha = check_fraction(hard_alpha, "hard_alpha")
    x, y, queue = positive_pairs(x, y, queue, normalize)
    similarities = directional_similarities(x, y, queue, symmetric)
    return mean_over_directions(lambda s: _simple(s, lam, hard_alpha), similarities)


class SimpleLoss(nn.Module):
    """Module form of :func:`simple_loss`.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import SimpleLoss
        >>> x, y = F.normalize(torch.randn(2, 64, 16), dim=-1)
        >>> loss = SimpleLoss(lam=0.01)(x, y)
    """

    def __init__(self, lam: float, hard_alpha: float | None = None, normalize: bool = False):
        super().__init__()
        self.lam = check_positive(lam, "lam")
        self.hard_alpha = None if hard_alpha is None else check_fraction(hard_alpha, "hard_alpha")
        self.normalize = normalize

    def forward(self, x, y, queue=None, symmetric: bool = True):
        return simple_loss(x, y, self.lam, self.hard_alpha, queue, self.normalize, symmetric)

    def extra_repr(self) -> str:
        return f"lam={self.lam:g}, hard_alpha={self.hard_alpha}"
