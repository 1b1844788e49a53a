"""Supervised contrastive loss of Khosla et al. (2020), the L_out form, over the 2N views of a batch."""

from __future__ import annotations

import torch

from .._numerics import full_precision
from .._validation import ArrayLike, check_labels
from .base import Loss
from .candidates import check_scale, positive_pairs, scale_argument, scale_value
from .engine.fused import fused_supcon
from .global_batch import Shard, checked_inputs, mean_terms
from .other_views import other_views_logsumexp


def _labels_on(labels: ArrayLike, n: int, name: str, device: torch.device) -> torch.Tensor:
    """An integer label vector of length ``n`` on ``device``; floats, bools and wrong lengths are errors."""
    return check_labels(labels, n, name, whole_floats=False).to(device)


@full_precision
def supervised_contrastive_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    labels: ArrayLike,
    tau: float | torch.Tensor = 0.1,
    queue: torch.Tensor | None = None,
    queue_labels: ArrayLike | None = None,
    normalize: bool = False,
    shard: Shard | None = None,
) -> torch.Tensor:
    """SupCon (Khosla et al., NeurIPS 2020), L_out: every same-label view is a positive.

    With z = [x; y] the 2N views (labels repeated for the second views), anchor
    z_a has the positives P(a) = every other view with its label (its own
    other view among them) and the candidates A(a) = every other view, so

        L = mean_a  -(1/|P(a)|) Σ_{p∈P(a)} log[ exp(z_aᵀz_p/τ) / Σ_{b∈A(a)} exp(z_aᵀz_b/τ) ],

    the mean over the 2N anchors (eq. 2 of the paper). Negatives (the paper's):
    all 2N − 1 other views, same-view ones included, as in SimCLR; with all
    labels distinct the loss is NT-Xent (:func:`~aligniform.losses.nt_xent_loss`).
    A ``queue`` with ``queue_labels`` (a MoCo-style memory of past features)
    adds its rows to every anchor's candidates and its same-label rows to the
    positives; queue rows are never anchors. The authors' code multiplies by
    τ/τ_base, which is 1 at their defaults; it is left out.

    The positive sums are O(N·d) (per-class sums of the views: Σ_{p∈P(a)} z_p =
    S_label(a) − z_a), and the denominators come from the exact tiled engine in
    O(N × block) memory, forward and backward.

    Args:
        x: (N, d) L2-normalised first views, N >= 2 (N >= 1 with a queue).
        y: (N, d) L2-normalised second views.
        labels: (N,) integer class labels of the samples (a tensor or array).
        tau: positive temperature (a number or a 0-dim tensor with gradient).
        queue: optional (K, d) features of past batches (no gradient).
        queue_labels: (K,) integer labels of the queue rows; required with a queue.
        normalize: L2-normalise the inputs first.
        shard: under ``torchrun``, x, y and labels are this rank's rows of the global batch; each rank computes
            its anchors' terms (class sums from the gathered views) and the result is the global batch's loss
            (see :func:`aligniform.distributed.global_loss`).

    Returns:
        Scalar tensor.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import supervised_contrastive_loss
        >>> from aligniform.losses import nt_xent_loss
        >>> x, y = F.normalize(torch.randn(2, 32, 16, dtype=torch.float64), dim=-1)
        >>> labels = torch.randint(0, 4, (32,))
        >>> loss = supervised_contrastive_loss(x, y, labels, tau=0.1)
        >>> distinct = supervised_contrastive_loss(x, y, torch.arange(32), tau=0.1)
        >>> torch.allclose(distinct, nt_xent_loss(x, y, tau=0.1))  # distinct labels: NT-Xent
        True
    """
    tau = check_scale(tau, "tau")
    if (queue is None) != (queue_labels is None):
        raise ValueError("queue and queue_labels go together: pass both (the queue rows' labels) or neither")
    x, y, queue = positive_pairs(x, y, queue, normalize, shard)

    def check() -> tuple[torch.Tensor, torch.Tensor | None]:
        own = _labels_on(labels, x.shape[0], "labels", x.device)
        if queue is None or queue_labels is None:
            return own, None
        return own, _labels_on(queue_labels, queue.shape[0], "queue_labels", x.device)

    own_labels, queue_classes = checked_inputs(shard, check)
    # The members of the classes: every view of the (global) batch, then the queue rows. Their labels first (no
    # gradient), so that a one-tile batch can go to the fused node before any differentiable operation is made.
    view_labels = own_labels if shard is None else shard.gather(own_labels)
    member_labels = view_labels.repeat(2)
    if queue is not None:
        assert queue_classes is not None
        member_labels = torch.cat([member_labels, queue_classes])
    classes, index = torch.unique(member_labels, return_inverse=True)
    counts = torch.bincount(index, minlength=len(classes))
    anchor_class = torch.searchsorted(classes, own_labels).repeat(2)
    positive_count = (counts[anchor_class] - 1).to(x.dtype)
    if queue is None and shard is None:
        fused = fused_supcon(x, y, tau, index, anchor_class, positive_count, len(classes))
        if fused is not None:  # one tile: the same arithmetic as below, as one autograd node
            return fused
    views = torch.cat([x, y]) if shard is None else torch.cat([shard.gather(x), shard.gather(y)])
    members = views if queue is None else torch.cat([views, queue])
    class_sums = members.new_zeros(len(classes), members.shape[1]).index_add(0, index, members)
    z = torch.cat([x, y])  # this process's anchors
    # Σ_{p∈P(a)} z_aᵀz_p = z_aᵀ(S_label(a) − z_a); every anchor has at least its other view.
    positive_sum = (z * class_sums[anchor_class]).sum(1) - (z * z).sum(1)
    lse = other_views_logsumexp(x, y, tau, queue, positive=True, shard=shard)
    return mean_terms(lse - positive_sum / (positive_count * tau), shard)


class SupervisedContrastiveLoss(Loss):
    """Module form of :func:`supervised_contrastive_loss`; called as ``loss(x, y, labels)``.

    ``tau`` may be an ``nn.Parameter`` (0-dim): it is then registered and learnt.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import SupervisedContrastiveLoss
        >>> x, y = F.normalize(torch.randn(2, 32, 16), dim=-1)
        >>> loss = SupervisedContrastiveLoss(tau=0.1)(x, y, torch.randint(0, 4, (32,)))
    """

    term = "supervised_contrastive"
    takes_labels = True
    moco_form = False

    def __init__(self, tau: float | torch.Tensor = 0.1, normalize: bool = False) -> None:
        super().__init__()
        self.tau = self.argument("tau", tau, scale_argument("tau"))
        self.normalize = normalize

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        labels: ArrayLike,
        queue: torch.Tensor | None = None,
        queue_labels: ArrayLike | None = None,
        shard: Shard | None = None,
    ) -> torch.Tensor:
        return supervised_contrastive_loss(x, y, labels, self.value("tau"), queue, queue_labels, self.normalize, shard)

    def extra_repr(self) -> str:
        return f"tau={scale_value(self.tau):g}"
