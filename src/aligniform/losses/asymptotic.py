"""Batch estimate of the limit in Wang & Isola's Theorem 1."""

from __future__ import annotations

import math

import torch

from .._numerics import full_precision
from .base import Loss
from .candidates import (
    check_scale,
    mean_softmax_terms,
    negatives_per_anchor,
    positive_pairs,
    resolve_batch_negatives,
    scale_argument,
    scale_value,
)
from .global_batch import Shard, batch_size


@full_precision
def asymptotic_contrastive_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    tau: float | torch.Tensor,
    normalize: bool = False,
    queue: torch.Tensor | None = None,
    symmetric: bool = True,
    batch_negatives: bool | None = None,
    shard: Shard | None = None,
) -> torch.Tensor:
    """The M → ∞ limit of ``contrastive_loss - log M``, estimated on a batch.

    Theorem 1 of Wang & Isola (2020): as the number of negatives M grows,
    ``L_contrastive(f; tau, M) - log M`` tends to

        -(1/tau) E_pos[f(x)ᵀf(y)] + E_x[ log E_{x⁻}[ exp(f(x)ᵀf(x⁻)/tau) ] ].

    On a batch of N pairs: the first term is ``-(1/tau) mean_i x_iᵀy_i``. The
    second uses, for anchor x_i, the N - 1 other samples' second views y_j
    (j != i) as independent draws x⁻: ``mean_i log mean_{j≠i} exp(x_iᵀy_j / tau)``,
    and it is averaged with the same term for anchors y_i against x_j (j != i),
    to match the symmetric :func:`contrastive_loss`. The positive itself never
    enters the second term. With a ``queue`` its rows are further draws x⁻
    (and, in MoCo's form ``symmetric=False``, the only ones unless
    ``batch_negatives=True``), exactly as the negatives of :func:`contrastive_loss`.
    Exact, tile by tile, in O(N × block) memory.

    Args:
        x: (N, d) L2-normalised first views, N >= 2.
        y: (N, d) L2-normalised second views.
        tau: positive temperature (a number or a 0-dim tensor with gradient).
        normalize: L2-normalise the inputs first.
        queue: optional (K, d) extra negatives (no gradient).
        symmetric: both directions; ``False``: anchors x only.
        batch_negatives: as in :func:`contrastive_loss`.
        shard: x and y are this rank's rows of the global batch; each rank
            computes its anchors' terms (see :func:`aligniform.distributed.global_loss`).

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import asymptotic_contrastive_loss
        >>> x, y = F.normalize(torch.randn(2, 64, 16), dim=-1)
        >>> loss = asymptotic_contrastive_loss(x, y, tau=0.5)
    """
    tau = check_scale(tau, "tau")
    x, y, queue = positive_pairs(x, y, queue, normalize, shard)
    batch_negatives = resolve_batch_negatives(batch_negatives, queue, symmetric)
    negatives = negatives_per_anchor(batch_size(x, shard), queue, batch_negatives)
    mean = mean_softmax_terms(x, y, queue, tau, symmetric, batch_negatives, positive_in_denominator=False, shard=shard)
    return mean - math.log(negatives)


class AsymptoticContrastiveLoss(Loss):
    """Module form of :func:`asymptotic_contrastive_loss`.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import AsymptoticContrastiveLoss
        >>> x, y = F.normalize(torch.randn(2, 64, 16), dim=-1)
        >>> loss = AsymptoticContrastiveLoss(tau=0.5)(x, y)
    """

    term = "asymptotic_contrastive"

    def __init__(self, tau: float | torch.Tensor, normalize: bool = False) -> None:
        super().__init__()
        self.tau = self.argument("tau", tau, scale_argument("tau"))
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
        return asymptotic_contrastive_loss(
            x, y, self.value("tau"), self.normalize, queue, symmetric, batch_negatives, shard
        )

    def extra_repr(self) -> str:
        return f"tau={scale_value(self.tau):g}"
