"""The unsupervised logistic loss of Arora et al. (2019), with one or k negatives per anchor."""

from __future__ import annotations

import torch
from torch import nn

from .._numerics import full_precision, upcast


@full_precision
def arora_logistic_loss(anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Arora et al.'s unsupervised logistic loss L_un, averaged over the batch.

    From Arora, Khandeparkar, Khodak, Plevrakis and Saunshi, "A Theoretical
    Analysis of Contrastive Unsupervised Representation Learning" (ICML 2019):
    ``L_un = mean_i log(1 + Σ_k exp(f(x_i)ᵀf(x⁻_ik) − f(x_i)ᵀf(x⁺_i)))``. With one
    negative per anchor it is the paper's ``log(1 + exp(f(x)ᵀf(x⁻) − f(x)ᵀf(x⁺)))``;
    with k negatives, its k-negative version. It is computed as a log-sum-exp
    with a 0 logit, so large margins cannot overflow. The features need not be
    unit-norm (the paper's f is any representation).

    Args:
        anchor: (n, d) features f(x) of the anchors.
        positive: (n, d) features f(x⁺), row i a positive of anchor i.
        negatives: (n, d) features of one negative per anchor, or (n, k, d) for k negatives each.

    Returns:
        Scalar tensor; at least log(1 + k e^{−2}) for unit-norm features.

    Raises:
        ValueError: the shapes do not line up.

    Examples:
        >>> import torch
        >>> z = torch.eye(2)
        >>> round(float(arora_logistic_loss(z[:1], z[:1], z[1:])), 4)  # log(1 + e^{0 - 1})
        0.3133
    """
    if anchor.ndim != 2 or positive.shape != anchor.shape:
        raise ValueError(
            f"anchor and positive must be (n, d) with the same shape, got {tuple(anchor.shape)} and "
            f"{tuple(positive.shape)}"
        )
    if negatives.ndim == 2:
        negatives = negatives[:, None, :]
    if negatives.ndim != 3 or negatives.shape[0] != anchor.shape[0] or negatives.shape[2] != anchor.shape[1]:
        raise ValueError(
            f"negatives must be (n, d) or (n, k, d) with n = {anchor.shape[0]} and d = {anchor.shape[1]}, "
            f"got {tuple(negatives.shape)}"
        )
    anchor, positive, negatives = upcast(anchor, positive, negatives)
    positive_score = (anchor * positive).sum(-1, keepdim=True)
    margins = torch.einsum("nd,nkd->nk", anchor, negatives) - positive_score
    logits = torch.cat([torch.zeros_like(margins[:, :1]), margins], 1)
    return torch.logsumexp(logits, 1).mean()


class AroraLogisticLoss(nn.Module):
    """Module form of :func:`arora_logistic_loss`.

    Examples:
        >>> import torch
        >>> z = torch.eye(2)
        >>> round(float(AroraLogisticLoss()(z[:1], z[:1], z[1:])), 4)
        0.3133
    """

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        return arora_logistic_loss(anchor, positive, negatives)
