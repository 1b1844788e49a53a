"""Debiased contrastive loss of Chuang et al. (2020), with the hard-negative reweighting of Robinson et al. (2021)."""

from __future__ import annotations

import math

import torch

from .._numerics import full_precision, is_finite_number
from .._validation import _real_number
from .base import Loss
from .candidates import check_scale, positive_pairs, scale_argument, scale_value
from .engine.fused import fused_debiased
from .global_batch import Shard, batch_size, mean_terms
from .other_views import other_views_logsumexp


def _check_class_prior(value: object) -> float:
    number = _real_number(value)
    if number is None or not 0 < number < 1:
        raise ValueError(f"`tau_plus` must be a number in (0, 1) (the class prior of a positive), got {value!r}")
    return number


def _check_beta(value: object) -> float:
    number = _real_number(value)
    if not is_finite_number(number) or number < 0:
        raise ValueError(f"`beta` must be a finite number >= 0 (0: no hard-negative reweighting), got {value!r}")
    return number


def _log1mexp(delta: torch.Tensor) -> torch.Tensor:
    """log(1 − e^δ) for δ < 0, accurate at both ends (Mächler 2012)."""
    return torch.where(delta > -math.log(2), torch.log(-torch.expm1(delta)), torch.log1p(-torch.exp(delta)))


@full_precision
def debiased_contrastive_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    tau: float | torch.Tensor = 0.5,
    tau_plus: float = 0.1,
    beta: float = 0.0,
    queue: torch.Tensor | None = None,
    normalize: bool = False,
    shard: Shard | None = None,
) -> torch.Tensor:
    """Debiased contrastive loss (Chuang et al., NeurIPS 2020); hard-negative variant (Robinson et al., ICLR 2021).

    In-batch "negatives" are drawn from the data, so a fraction τ⁺ of them (the
    class prior) share the anchor's class. Chuang et al. correct the negative
    term for it: with the anchor's positive logit ℓ⁺ = z_aᵀz_a⁺/τ and its M
    negatives n,

        g_a = max( (Σ_n exp(z_aᵀz_n/τ) − τ⁺·M·exp(ℓ⁺)) / (1 − τ⁺),  M·e^{−1/τ} ),
        L_a = −log[ exp(ℓ⁺) / (exp(ℓ⁺) + g_a) ],

    the clipping at M·e^{−1/τ} (the smallest the negative sum can be on the
    sphere) as in the paper; the loss is the mean over the 2N anchors of
    z = [x; y]. Negatives (the paper's SimCLR setting): the other 2N − 2 views,
    same-view ones included (M = 2N − 2), plus the ``queue`` rows if given.

    ``beta > 0`` is Robinson et al.'s hard-negative sampling: Σ_n exp(z_aᵀz_n/τ)
    becomes Σ_n w_n exp(z_aᵀz_n/τ) / mean_n w_n with w_n = exp(β z_aᵀz_n/τ),
    i.e. ``M · exp(LSE_n (1+β)ℓ_n − LSE_n βℓ_n)``: two exact tiled log-sum-exps
    at two scales. ``beta = 0`` is Chuang et al.'s loss.

    Everything stays in log space; the only subtraction is the estimator's own
    (the corrected sum), evaluated as log(e^S − e^P) = S + log(1 − e^{P−S}) and
    replaced by the clipping value wherever it is not positive.

    Args:
        x: (N, d) L2-normalised first views, N >= 2 (N >= 1 with a queue).
        y: (N, d) L2-normalised second views.
        tau: positive temperature (a number or a 0-dim tensor with gradient);
            0.5 in the authors' code.
        tau_plus: class prior τ⁺ in (0, 1) (0.1 in the paper for 10 classes).
        beta: hardness β >= 0 of Robinson et al.'s reweighting (0: none).
        queue: optional (K, d) extra negatives (no gradient).
        normalize: L2-normalise the inputs first.
        shard: under ``torchrun``, x and y are this rank's rows; each rank computes its anchors' terms and the
            result is the global batch's loss.

    Returns:
        Scalar tensor.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import debiased_contrastive_loss
        >>> x, y = F.normalize(torch.randn(2, 32, 16), dim=-1)
        >>> debiased = debiased_contrastive_loss(x, y, tau=0.5, tau_plus=0.1)
        >>> hard = debiased_contrastive_loss(x, y, tau=0.5, tau_plus=0.1, beta=1.0)
    """
    tau = check_scale(tau, "tau")
    tau_plus = _check_class_prior(tau_plus)
    beta = _check_beta(beta)
    x, y, queue = positive_pairs(x, y, queue, normalize, shard)
    if beta == 0 and queue is None and shard is None:
        fused = fused_debiased(x, y, tau, tau_plus)  # one tile: the same arithmetic as below, as one autograd node
        if fused is not None:
            return fused
    negatives = 2 * batch_size(x, shard) - 2 + (0 if queue is None else queue.shape[0])
    positive = ((x * y).sum(1) / tau).repeat(2)
    if beta == 0:
        negative = other_views_logsumexp(x, y, tau, queue, positive=False, shard=shard)
    else:
        weighted = other_views_logsumexp(x, y, tau / (1 + beta), queue, positive=False, shard=shard)
        weights = other_views_logsumexp(x, y, tau / beta, queue, positive=False, shard=shard)
        negative = weighted - weights + math.log(negatives)
    # log of the clipping value M·e^{−1/τ}, and of the corrected sum where it exceeds 0.
    floor = torch.zeros_like(positive) + (math.log(negatives) - 1 / tau)
    delta = math.log(tau_plus * negatives) + positive - negative
    valid = delta < 0
    corrected = negative + _log1mexp(torch.where(valid, delta, torch.full_like(delta, -1.0))) - math.log1p(-tau_plus)
    log_g = torch.where(valid, torch.maximum(corrected, floor), floor)
    return mean_terms(torch.logaddexp(positive, log_g) - positive, shard)


class DebiasedContrastiveLoss(Loss):
    """Module form of :func:`debiased_contrastive_loss`.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import DebiasedContrastiveLoss
        >>> x, y = F.normalize(torch.randn(2, 32, 16), dim=-1)
        >>> loss = DebiasedContrastiveLoss(tau=0.5, tau_plus=0.1, beta=1.0)(x, y)
    """

    term = "debiased_contrastive"
    moco_form = False

    def __init__(
        self, tau: float | torch.Tensor = 0.5, tau_plus: float = 0.1, beta: float = 0.0, normalize: bool = False
    ) -> None:
        super().__init__()
        self.tau = self.argument("tau", tau, scale_argument("tau"))
        self.tau_plus, self.beta = _check_class_prior(tau_plus), _check_beta(beta)
        self.normalize = normalize

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, queue: torch.Tensor | None = None, shard: Shard | None = None
    ) -> torch.Tensor:
        return debiased_contrastive_loss(
            x, y, self.value("tau"), self.tau_plus, self.beta, queue, self.normalize, shard
        )

    def extra_repr(self) -> str:
        text = f"tau={scale_value(self.tau):g}, tau_plus={self.tau_plus:g}"
        return f"{text}, beta={self.beta:g}" if self.beta else text
