"""Barlow Twins (Zbontar et al., ICML 2021): the two views' cross-correlation matrix driven to the identity."""

from __future__ import annotations

import torch

from .._numerics import full_precision, upcast
from .._validation import check_feature_pair, check_positive
from .base import Loss
from .global_batch import Shard, batch_size, checked_inputs

# BatchNorm1d's default: the paper standardises each dimension with a BatchNorm1d(affine=False).
EPS = 1e-5


@full_precision
def barlow_twins_loss(x: torch.Tensor, y: torch.Tensor, lam: float = 5e-3, shard: Shard | None = None) -> torch.Tensor:
    """Barlow Twins' redundancy-reduction loss of two views' embeddings.

    Each dimension is standardised over the batch (mean 0, biased variance 1,
    ``eps`` 1e-5, as the paper's ``BatchNorm1d(affine=False)``), the (d, d)
    cross-correlation ``C = x̂ᵀŷ / N`` is formed, and

        L = Σ_i (1 − C_ii)² + lam · Σ_{i≠j} C_ij².

    The invariance term pulls the two views' dimensions together, the
    redundancy term decorrelates the dimensions. The inputs are the
    projector's raw embeddings: they need not, and usually do not, lie on the
    unit sphere (the class's ``unit_features`` is ``False``).

    Args:
        x: (N, d) embeddings of the first views, N >= 2.
        y: (N, d) embeddings of the second views, row i paired with x[i].
        lam: positive weight of the off-diagonal (redundancy) term; the paper's 5e-3.
        shard: under ``torchrun``, x and y are this rank's rows; the batch
            statistics and ``C`` are summed over the ranks (as the paper's
            synchronised batch norm and all-reduce of ``C``), so the result is
            the global batch's loss.

    Returns:
        Scalar tensor, >= 0.

    Examples:
        >>> import torch
        >>> from aligniform.losses import barlow_twins_loss
        >>> x = torch.randn(64, 8)
        >>> float(barlow_twins_loss(x, x, lam=1e-9)) < 1e-6   # identical views: a unit diagonal
        True
        >>> float(barlow_twins_loss(x, torch.randn(64, 8))) > 1   # unrelated views
        True
    """
    lam = check_positive(lam, "lam")
    x, y = upcast(
        *checked_inputs(
            shard,
            lambda: check_feature_pair(x, y, min_rows=2 if shard is None else 0, require_unit_norm=False),
            min_rows=2,
        )
    )
    n = batch_size(x, shard)

    def total(value: torch.Tensor) -> torch.Tensor:
        return value if shard is None else shard.sum(value)

    def standardised(z: torch.Tensor) -> torch.Tensor:
        centred = z - total(z.sum(0)) / n
        return centred / (total(centred.pow(2).sum(0)) / n + EPS).sqrt()

    c = total(standardised(x).T @ standardised(y)) / n
    diagonal = torch.diagonal(c)
    on_diagonal = (1 - diagonal).pow(2).sum()
    off_diagonal = c.pow(2).sum() - diagonal.pow(2).sum()
    return on_diagonal + lam * off_diagonal


class BarlowTwinsLoss(Loss):
    """Module form of :func:`barlow_twins_loss`; the objective term ``barlow_twins(lam=0.005)``.

    Examples:
        >>> import torch
        >>> from aligniform.losses import BarlowTwinsLoss
        >>> x, y = torch.randn(2, 32, 16)
        >>> BarlowTwinsLoss()(x, y).shape
        torch.Size([])
    """

    term = "barlow_twins"
    moco_form = False
    unit_features = False

    def __init__(self, lam: float = 5e-3) -> None:
        super().__init__()
        self.lam = check_positive(lam, "lam")

    def forward(self, x: torch.Tensor, y: torch.Tensor, shard: Shard | None = None) -> torch.Tensor:
        return barlow_twins_loss(x, y, self.lam, shard)

    def extra_repr(self) -> str:
        return f"lam={self.lam:g}"
