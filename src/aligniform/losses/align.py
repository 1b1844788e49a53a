"""Alignment loss of Wang & Isola (2020): E ||f(x) - f(y)||^alpha over positive pairs."""

from __future__ import annotations

import math

import torch

from .._numerics import full_precision, upcast
from .._validation import check_feature_pair, check_positive
from ..errors import OptionError
from .base import Loss
from .global_batch import Shard, batch_size, checked_inputs, mean_terms


@full_precision
def align_loss(
    x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0, normalize: bool = False, shard: Shard | None = None
) -> torch.Tensor:
    """Mean distance between positive pairs raised to ``alpha``.

    ``L_align = mean_i ||x_i - y_i||₂^alpha``; lower is better. On the unit
    sphere with alpha = 2 it equals ``2 - 2 mean_i x_iᵀy_i``.

    Args:
        x: (N, d) L2-normalised features of the first views.
        y: (N, d) L2-normalised features of the second views, row i paired with x[i].
        alpha: positive exponent (the paper uses 2; 1 is also studied).
        normalize: L2-normalise x and y first instead of requiring unit norm.
        shard: x and y are this rank's rows of the global batch; the result is
            the global batch's mean (see :func:`aligniform.distributed.global_loss`).

    Returns:
        Scalar tensor in [0, 2^alpha] for unit-norm inputs.

    Raises:
        OptionError: ``alpha`` so large that the mean overflows the features' dtype (a huge ``alpha`` whose
            mean fits is computed in log space).

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import align_loss
        >>> x = F.normalize(torch.randn(8, 16), dim=1)
        >>> float(align_loss(x, x))
        0.0
    """
    alpha = check_positive(alpha, "alpha")
    x, y = upcast(
        *checked_inputs(
            shard, lambda: check_feature_pair(x, y, normalize=normalize, min_rows=1 if shard is None else 0)
        )
    )
    squared = (x - y).pow(2).sum(1)
    if alpha == 2.0:
        return mean_terms(squared, shard)
    # ||v||^alpha = (||v||²)^(alpha/2). The clamp keeps the gradient of identical
    # rows finite (0 instead of 0 * inf); it only touches distances below eps.
    squared = squared.clamp_min(torch.finfo(squared.dtype).eps ** 2)
    largest = math.log(torch.finfo(squared.dtype).max)
    # Each term is at most 2^alpha, so their sum can only overflow when N * 2^alpha exceeds the dtype's range;
    # below that the plain mean is exact (and unchanged), above it the mean is taken in log space.
    if alpha * math.log(2.0) + math.log(max(batch_size(x, shard), 1)) < largest:
        return mean_terms(squared.pow(alpha / 2), shard)
    if shard is not None:
        loss = mean_terms(squared.pow(alpha / 2), shard)
        log_mean = math.inf if not bool(torch.isfinite(loss)) else 0.0
    else:
        log_mean_tensor = torch.logsumexp((alpha / 2) * squared.log(), dim=0) - math.log(squared.shape[0])
        log_mean = float(log_mean_tensor)
        loss = log_mean_tensor.exp()
    if log_mean >= largest:
        raise OptionError(
            f"`alpha` ({alpha:g}) is too large: the mean ||x - y||^alpha of these pairs overflows {squared.dtype}"
            + (f" (its log is {log_mean:.4g}, the dtype reaches e^{largest:.4g})" if math.isfinite(log_mean) else "")
            + "; pass a smaller `alpha`"
            + (" or float64 features" if squared.dtype != torch.float64 else "")
        )
    return loss


class AlignLoss(Loss):
    """Module form of :func:`align_loss`.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import AlignLoss
        >>> x, y = F.normalize(torch.randn(2, 8, 16), dim=-1)
        >>> AlignLoss(alpha=2)(x, y).shape
        torch.Size([])
    """

    term = "align"

    def __init__(self, alpha: float = 2.0, normalize: bool = False):
        super().__init__()
        self.alpha = check_positive(alpha, "alpha")
        self.normalize = normalize

    def forward(self, x: torch.Tensor, y: torch.Tensor, shard: Shard | None = None) -> torch.Tensor:
        return align_loss(x, y, self.alpha, normalize=self.normalize, shard=shard)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}"
