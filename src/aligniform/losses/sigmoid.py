"""Pairwise sigmoid loss of SigLIP (Zhai et al. 2023), tile by tile."""

from __future__ import annotations

import torch

from .._numerics import full_precision, is_finite_number
from .._validation import _real_number
from .base import Learn, Loss
from .candidates import check_scale, positive_pairs, scale_argument, scale_value
from .engine import tiled_softplus_sum
from .engine.fused import fused_sigmoid
from .global_batch import Shard, batch_size


def check_bias(value: float | torch.Tensor) -> float | torch.Tensor:
    """A finite real bias: a number, or a one-element floating-point tensor that may carry gradient."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or not value.is_floating_point():
            raise ValueError(
                f"`bias` must be a finite number or a one-element floating-point tensor, "
                f"got a {value.dtype} tensor of shape {tuple(value.shape)}"
            )
        if not is_finite_number(float(value.detach())):
            raise ValueError(f"`bias` must be finite, got {float(value.detach())}")
        return value.reshape(())
    number = _real_number(value)
    if not is_finite_number(number):
        raise ValueError(f"`bias` must be a finite number, got {value!r}")
    return number


@full_precision
def sigmoid_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    scale: float | torch.Tensor = 10.0,
    bias: float | torch.Tensor = -10.0,
    normalize: bool = False,
    shard: Shard | None = None,
) -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss (Zhai et al., ICCV 2023).

    Every pair (x_i, y_j) of the batch is a binary problem on the logit
    l_ij = scale · x_iᵀy_j + bias, with label z_ij = +1 for the positive pair
    (i = j) and −1 for every other pair:

        L = −(1/N) Σ_i Σ_j log σ(z_ij l_ij),

    divided by N as in the paper. Negatives (the paper's): the N − 1 other
    samples' second views, each pair (i, j ≠ i) once (no softmax, no same-view
    pairs). The paper learns ``scale = exp(t')`` with t' initialised at log 10
    and ``bias`` initialised at −10 (these defaults); both may be 0-dim tensors
    with gradient. The scale and bias are folded into augmented vectors
    [scale·x_i, bias]·[y_j, 1] and the softplus sums run tile by tile with a
    custom backward that recomputes each tile: O(N × block) memory. A batch
    whose logits are one tile and need gradient runs the same arithmetic as one
    autograd node (:class:`~aligniform.losses.engine.fused.FusedSigmoid`), bitwise equal.

    Args:
        x: (N, d) L2-normalised first views (images), N >= 2.
        y: (N, d) L2-normalised second views (texts).
        scale: positive logit scale t (a number or a 0-dim tensor with gradient).
        bias: logit bias b (a number or a 0-dim tensor with gradient).
        normalize: L2-normalise the inputs first.
        shard: under ``torchrun``, x and y are this rank's rows. As the paper's chunked implementation, each
            rank sums its own rows against every rank's columns (the gathered y, never a full similarity
            matrix); the ranks' sums are added and the result is the global batch's loss.

    Returns:
        Scalar tensor.

    Examples:
        >>> import math, torch, torch.nn.functional as F
        >>> from aligniform import sigmoid_loss
        >>> x, y = F.normalize(torch.randn(2, 32, 16), dim=-1)
        >>> log_scale = torch.tensor(math.log(10.0), requires_grad=True)  # the paper's parametrisation
        >>> bias = torch.tensor(-10.0, requires_grad=True)
        >>> sigmoid_loss(x, y, scale=log_scale.exp(), bias=bias).backward()
        >>> log_scale.grad is not None and bias.grad is not None
        True
    """
    scale = check_scale(scale, "scale")
    bias = check_bias(bias)
    x, y, _ = positive_pairs(x, y, None, normalize, shard)
    if shard is None:
        fused = fused_sigmoid(x, y, scale, bias)
        if fused is not None:
            return fused
    rows = torch.cat([x * scale, torch.ones_like(x[:, :1]) * bias], 1)
    candidates = y if shard is None else shard.gather(y)
    columns = torch.cat([candidates, torch.ones_like(candidates[:, :1])], 1)
    total = tiled_softplus_sum(rows, columns, offset=0 if shard is None else shard.start)
    return (total if shard is None else shard.sum(total)) / batch_size(x, shard)


class SigmoidLoss(Loss):
    """Module form of :func:`sigmoid_loss`.

    ``scale`` and ``bias`` may be ``nn.Parameter`` s (0-dim): they are then
    registered and learnt; the way to learn them is ``scale=learn(10)``,
    ``bias=learn(-10)`` (:func:`~aligniform.losses.learn`, the scale stored as its log, the paper's
    parametrisation). ``learnable=True`` is a thin alias that learns both from their given values.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import SigmoidLoss
        >>> loss_fn = SigmoidLoss(learnable=True)
        >>> sorted(name for name, _ in loss_fn.named_parameters())
        ['learned.bias.parameter', 'learned.scale.parameter']
        >>> x, y = F.normalize(torch.randn(2, 32, 16), dim=-1)
        >>> loss_fn(x, y).backward()
    """

    term = "sigmoid"
    moco_form = False

    def __init__(
        self,
        scale: float | torch.Tensor | Learn = 10.0,
        bias: float | torch.Tensor | Learn = -10.0,
        *,
        learnable: bool = False,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        if learnable:  # a thin alias: both arguments learnt, as the paper does
            scale = scale if isinstance(scale, Learn) else Learn(scale_value(check_scale(scale, "scale")))
            bias = bias if isinstance(bias, Learn) else Learn(scale_value(check_bias(bias)))
        self.scale = self.argument("scale", scale, scale_argument("scale"))
        self.bias = self.argument("bias", bias, _keep_bias)
        self.normalize = normalize

    def forward(self, x: torch.Tensor, y: torch.Tensor, shard: Shard | None = None) -> torch.Tensor:
        return sigmoid_loss(x, y, self.value("scale"), self.value("bias"), self.normalize, shard)

    def extra_repr(self) -> str:
        return f"scale={scale_value(self.scale):g}, bias={scale_value(self.bias):g}"


def _keep_bias(value: float | torch.Tensor) -> float | torch.Tensor:
    checked = check_bias(value)
    return value if isinstance(value, torch.Tensor) else checked
