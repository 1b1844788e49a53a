"""Decoupled contrastive loss of Yeh et al. (2022): the positive leaves the denominator; DCLW weights it."""

from __future__ import annotations

import torch

from .._numerics import full_precision
from .._validation import check_positive
from .base import Loss
from .candidates import check_scale, positive_pairs, scale_argument, scale_value
from .engine.fused import fused_decoupled
from .global_batch import Shard, batch_size, mean_terms
from .other_views import other_views_logsumexp


@full_precision
def decoupled_contrastive_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    tau: float | torch.Tensor = 0.1,
    weighted: bool = False,
    sigma: float = 0.5,
    queue: torch.Tensor | None = None,
    normalize: bool = False,
    shard: Shard | None = None,
) -> torch.Tensor:
    """DCL and DCLW (Yeh et al., ECCV 2022): InfoNCE without the positive in the denominator.

    In the SimCLR setting (z = [x; y], the 2N views), anchor z_a with positive
    z_a⁺ (its other view) has

        L_a = −w_a z_aᵀz_a⁺/τ + log Σ_{n ∈ N(a)} exp(z_aᵀz_n/τ),

    N(a) the paper's negatives: the other 2N − 2 views, same-view ones included
    (plus every ``queue`` row, if given); the loss is the mean over the 2N
    anchors. DCL has w_a = 1. DCLW (``weighted=True``) weights each positive
    with the von Mises–Fisher weighting

        w_i = 2 − N · exp(x_iᵀy_i/σ) / Σ_j exp(x_jᵀy_j/σ),

    which averages to 1 and favours the harder (less similar) positives; σ = 0.5
    in the paper. As in the authors' code the weights are not detached (the
    gradient flows through them). The authors' code sums the two directions
    (a factor 2 on this mean).

    The anchor and its positive are excluded exactly: the engine's masks drop
    those pairs (no exp is subtracted back out), tile by tile, in O(N × block)
    memory forward and backward.

    Args:
        x: (N, d) L2-normalised first views, N >= 2 (N >= 1 with a queue).
        y: (N, d) L2-normalised second views.
        tau: positive temperature (a number or a 0-dim tensor with gradient).
        weighted: DCLW's weighting of the positives.
        sigma: DCLW's positive width σ (unused unless ``weighted``).
        queue: optional (K, d) extra negatives of every anchor (no gradient).
        normalize: L2-normalise the inputs first.
        shard: under ``torchrun``, x and y are this rank's rows; each rank computes its anchors' terms (DCLW's
            softmax over the gathered positives) and the result is the global batch's loss.

    Returns:
        Scalar tensor.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import decoupled_contrastive_loss
        >>> _ = torch.manual_seed(0)
        >>> x = F.normalize(torch.randn(32, 16), dim=1)
        >>> y = F.normalize(x + 0.1 * torch.randn(32, 16), dim=1)
        >>> dcl = decoupled_contrastive_loss(x, y, tau=0.1)
        >>> dclw = decoupled_contrastive_loss(x, y, tau=0.1, weighted=True, sigma=0.5)
        >>> bool(dcl < 0)  # no positive in the denominator: the loss can be negative
        True
    """
    tau = check_scale(tau, "tau")
    sigma = check_positive(sigma, "sigma")
    if not isinstance(weighted, bool):
        raise ValueError(f"`weighted` must be true or false, got {weighted!r}")
    x, y, queue = positive_pairs(x, y, queue, normalize, shard)
    if not weighted and queue is None and shard is None:
        fused = fused_decoupled(x, y, tau)  # one tile: the same arithmetic as below, as one autograd node
        if fused is not None:
            return fused
    similarity = (x * y).sum(1)
    if weighted:
        # The weights' softmax runs over the whole (global) batch's positives.
        every = similarity if shard is None else shard.gather(similarity)
        weights = 2 - batch_size(x, shard) * torch.softmax(every / sigma, 0)
        similarity = similarity * (weights if shard is None else shard.local(weights))
    lse = other_views_logsumexp(x, y, tau, queue, positive=False, shard=shard)
    return mean_terms(lse - (similarity / tau).repeat(2), shard)


class DecoupledContrastiveLoss(Loss):
    """Module form of :func:`decoupled_contrastive_loss`.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import DecoupledContrastiveLoss
        >>> x, y = F.normalize(torch.randn(2, 32, 16), dim=-1)
        >>> loss = DecoupledContrastiveLoss(tau=0.1, weighted=True)(x, y)
    """

    term = "decoupled_contrastive"
    moco_form = False

    def __init__(
        self, tau: float | torch.Tensor = 0.1, weighted: bool = False, sigma: float = 0.5, normalize: bool = False
    ) -> None:
        super().__init__()
        self.tau = self.argument("tau", tau, scale_argument("tau"))
        if not isinstance(weighted, bool):
            raise ValueError(f"`weighted` must be true or false, got {weighted!r}")
        self.weighted, self.sigma = weighted, check_positive(sigma, "sigma")
        self.normalize = normalize

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, queue: torch.Tensor | None = None, shard: Shard | None = None
    ) -> torch.Tensor:
        return decoupled_contrastive_loss(
            x, y, self.value("tau"), self.weighted, self.sigma, queue, self.normalize, shard
        )

    def extra_repr(self) -> str:
        text = f"tau={scale_value(self.tau):g}"
        return f"{text}, weighted=True, sigma={self.sigma:g}" if self.weighted else text
