"""InfoNCE: the symmetric in-batch form of Wang & Isola (2020), MoCo's form, and SimCLR's NT-Xent."""

from __future__ import annotations

import torch

from .._numerics import full_precision
from .base import Loss
from .candidates import (
    check_scale,
    mean_softmax_terms,
    positive_pairs,
    resolve_batch_negatives,
    scale_argument,
    scale_value,
)
from .engine import balanced_pairs_logsumexp, tiled_logsumexp
from .engine.fused import fused_nt_xent
from .global_batch import Shard


@full_precision
def contrastive_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    tau: float | torch.Tensor = 0.1,
    queue: torch.Tensor | None = None,
    normalize: bool = False,
    symmetric: bool = True,
    batch_negatives: bool | None = None,
    shard: Shard | None = None,
) -> torch.Tensor:
    """InfoNCE over a batch of positive pairs: symmetric in-batch, or MoCo's form with a queue.

    Each anchor's term is ``-log exp(s_pos/tau) / Σ_candidates exp(s/tau)``
    (logits uᵀv / tau); the loss is the mean over anchors. Candidates:

    * ``symmetric=True`` (default, the paper's baseline): anchor x_i against
      [y, queue] (positive y_i, negatives y_j for j != i and every queue row),
      and anchor y_i against [x, queue]; the mean of the 2N terms.
    * ``symmetric=False`` with a ``queue`` (MoCo, x = queries, y = keys): query
      x_i against [its own key y_i, queue], as in MoCo and Wang & Isola's
      MoCo code. ``batch_negatives=True`` adds the other keys of the batch as
      negatives (a different loss, not MoCo's).
    * ``symmetric=False`` without a queue: x_i against [y], one direction only.

    Same-view rows (x_j for anchor x_i) are never negatives here; that is
    :func:`nt_xent_loss`. Computed exactly, tile by tile, in O(N × block) memory
    forward and backward; the two directions come from the same tiles. A batch
    whose logits are one tile (no queue or shard) runs as one fused autograd
    node with the same arithmetic, bitwise (:mod:`aligniform.losses.engine.fused`).

    Args:
        x: (N, d) L2-normalised features of the first views (MoCo: queries).
        y: (N, d) L2-normalised features of the second views (MoCo: keys).
        tau: positive temperature: a number or a 0-dim tensor with gradient
            (learnable, e.g. ``1 / logit_scale.exp()`` as in CLIP).
        queue: optional (K, d) extra negatives for every anchor; no gradient.
        normalize: L2-normalise the inputs first instead of requiring unit norm.
        symmetric: average both directions; ``False``: anchors x only.
        batch_negatives: whether the other samples of the batch are negatives.
            Default: yes, except in MoCo's form (``symmetric=False`` with a queue).
        shard: under ``torchrun``, x and y are this rank's rows of the global
            batch and each rank computes only its anchors' terms; the result is
            the global batch's loss (see :func:`aligniform.distributed.global_loss`).

    Returns:
        Scalar tensor.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import contrastive_loss
        >>> x = F.normalize(torch.randn(32, 16), dim=1)
        >>> y = F.normalize(x + 0.1 * torch.randn(32, 16), dim=1)
        >>> loss = contrastive_loss(x, y, tau=0.5)
        >>> logit_scale = torch.tensor(2.0, requires_grad=True)  # a learnable temperature
        >>> contrastive_loss(x, y, tau=1 / logit_scale.exp()).backward()
        >>> logit_scale.grad is not None
        True
    """
    tau = check_scale(tau, "tau")
    x, y, queue = positive_pairs(x, y, queue, normalize, shard)
    batch_negatives = resolve_batch_negatives(batch_negatives, queue, symmetric)
    return mean_softmax_terms(x, y, queue, tau, symmetric, batch_negatives, shard=shard)


@full_precision
def nt_xent_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    tau: float | torch.Tensor = 0.1,
    normalize: bool = False,
    shard: Shard | None = None,
) -> torch.Tensor:
    """NT-Xent of SimCLR (Chen et al. 2020): each of the 2N views against all 2N - 1 others.

    With z = [x; y], anchor z_a's positive is its other view and its
    denominator runs over every other view, same-view ones included: 2N - 2
    negatives, against N - 1 in :func:`contrastive_loss`. The loss is the mean
    over the 2N anchors. Computed on the upper triangle of z zᵀ only (each pair
    once, both anchors' log-sum-exps from the same tile), exactly, in
    O(N × block) memory.

    Args:
        x: (N, d) L2-normalised first views, N >= 2.
        y: (N, d) L2-normalised second views.
        tau: positive temperature (a number or a 0-dim tensor with gradient).
        normalize: L2-normalise the inputs first.
        shard: x and y are this rank's rows; each rank visits an even share of
            the pairs (see :func:`contrastive_loss`).

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform.losses import nt_xent_loss
        >>> x, y = F.normalize(torch.randn(2, 64, 16), dim=-1)
        >>> loss = nt_xent_loss(x, y, tau=0.5)
    """
    tau = check_scale(tau, "tau")
    x, y, _ = positive_pairs(x, y, None, normalize, shard)
    if shard is not None:
        return _sharded_nt_xent(x, y, tau, shard)
    fused = fused_nt_xent(x, y, tau)  # one tile: the same arithmetic as below, as one autograd node
    if fused is not None:
        return fused
    z = torch.cat([x, y])
    anchors = z / tau
    rows, columns = tiled_logsumexp(anchors, z, column_lse=True, mask="upper")
    assert rows is not None and columns is not None
    # Anchor a's pairs b > a came in as its row, b < a as its column.
    lse = torch.logaddexp(rows, columns)
    positive = (anchors[: x.shape[0]] * y).sum(1)
    return (lse - positive.repeat(2)).mean()


def _sharded_nt_xent(x: torch.Tensor, y: torch.Tensor, tau: float | torch.Tensor, shard: Shard) -> torch.Tensor:
    """NT-Xent with this rank's views [x_r; y_r] as one block of the 2N points, the pairs split evenly."""
    # Block b of the point set is rank b's [x_b; y_b]; the ranks' anchors follow in that order.
    sizes = [2 * count for count in shard.counts]
    columns = torch.cat(
        [view for pair in zip(shard.blocks(shard.gather(x)), shard.blocks(shard.gather(y))) for view in pair]
    )
    rows = torch.cat([x, y]) / tau
    _, points = balanced_pairs_logsumexp(rows, columns, sizes, shard, column_lse=True)
    assert points is not None
    first = sum(sizes[: shard.rank])
    lse = shard.logsumexp(points)[first : first + sizes[shard.rank]]
    positive = (rows[: x.shape[0]] * y).sum(1)
    return shard.mean(lse - positive.repeat(2))


class ContrastiveLoss(Loss):
    """Module form of :func:`contrastive_loss`.

    ``tau`` may be an ``nn.Parameter`` (0-dim): it is then registered and learnt.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import ContrastiveLoss
        >>> x, y = F.normalize(torch.randn(2, 32, 16), dim=-1)
        >>> loss = ContrastiveLoss(tau=0.2)(x, y)
    """

    term = "contrastive"
    takes_queue = True
    directional = True

    def __init__(self, tau: float | torch.Tensor = 0.1, normalize: bool = False) -> None:
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
        return contrastive_loss(x, y, self.value("tau"), queue, self.normalize, symmetric, batch_negatives, shard)

    def extra_repr(self) -> str:
        return f"tau={scale_value(self.tau):g}"


class NTXentLoss(Loss):
    """Module form of :func:`nt_xent_loss`.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform.losses import NTXentLoss
        >>> x, y = F.normalize(torch.randn(2, 32, 16), dim=-1)
        >>> loss = NTXentLoss(tau=0.2)(x, y)
    """

    term = "nt_xent"
    moco_form = False

    def __init__(self, tau: float | torch.Tensor = 0.1, normalize: bool = False) -> None:
        super().__init__()
        self.tau = self.argument("tau", tau, scale_argument("tau"))
        self.normalize = normalize

    def forward(self, x: torch.Tensor, y: torch.Tensor, shard: Shard | None = None) -> torch.Tensor:
        return nt_xent_loss(x, y, self.value("tau"), self.normalize, shard)

    def extra_repr(self) -> str:
        return f"tau={scale_value(self.tau):g}"
