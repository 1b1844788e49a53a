"""Batch estimate of the limit in Wang & Isola's Theorem 1."""

from __future__ import annotations

import math

import torch
from torch import nn

from .._numerics import full_precision
from .._validation import check_positive
from ._pairs import positive_pairs


def _log_mean_exp_negatives(similarity: torch.Tensor, tau: float) -> torch.Tensor:
    n = similarity.shape[0]
    logits = (similarity / tau).masked_fill(torch.eye(n, dtype=torch.bool, device=similarity.device), -math.inf)
    return torch.logsumexp(logits, 1) - math.log(n - 1)


@full_precision
def asymptotic_contrastive_loss(x: torch.Tensor, y: torch.Tensor, tau: float, normalize: bool = False) -> torch.Tensor:
    """The M → ∞ limit of ``contrastive_loss - log M``, estimated on a batch.

    Theorem 1 of Wang & Isola (2020): as the number of negatives M grows,
    ``L_contrastive(f; tau, M) - log M`` tends to

        -(1/tau) E_pos[f(x)ᵀf(y)] + E_x[ log E_{x⁻}[ exp(f(x)ᵀf(x⁻)/tau) ] ].

    On a batch of N pairs: the first term is ``-(1/tau) mean_i x_iᵀy_i``. The
    second uses, for anchor x_i, the N - 1 other samples' second views y_j
    (j != i) as independent draws x⁻: ``mean_i log mean_{j≠i} exp(x_iᵀy_j / tau)``,
    and it is averaged with the same term for anchors y_i against x_j (j != i),
    to match the symmetric :func:`contrastive_loss`. The positive itself never
    enters the second term.

    Args:
        x: (N, d) L2-normalised first views, N >= 2.
        y: (N, d) L2-normalised second views.
        tau: positive temperature.
        normalize: L2-normalise the inputs first.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import asymptotic_contrastive_loss
        >>> x, y = F.normalize(torch.randn(2, 64, 16), dim=-1)
        >>> loss = asymptotic_contrastive_loss(x, y, tau=0.5)
    """
    tau = check_positive(tau, "tau")
    x, y, _ = positive_pairs(x, y, None, normalize)
    similarity = x @ y.T
    alignment_term = -(x * y).sum(1).mean() / tau
    uniformity_term = (_log_mean_exp_negatives(similarity, tau) + _log_mean_exp_negatives(similarity.T, tau)).mean() / 2
    return alignment_term + uniformity_term


class AsymptoticContrastiveLoss(nn.Module):
    """Module form of :func:`asymptotic_contrastive_loss`."""

    def __init__(self, tau: float, normalize: bool = False):
        super().__init__()
        self.tau = check_positive(tau, "tau")
        self.normalize = normalize

    def forward(self, x, y):
        return asymptotic_contrastive_loss(x, y, self.tau, self.normalize)

    def extra_repr(self) -> str:
        return f"tau={self.tau:g}"
