"""MoCo machinery (He et al. 2020), as in Wang & Isola's ImageNet-100 experiment.

A momentum copy of the encoder embeds the second view; its features are
pushed into a FIFO queue that the losses read through ``queue=``: extra
negatives for the contrastive loss, extra points for the uniformity loss
(squared distances to the queue, optionally plus intra-batch pairs).

The key encoder is MoCo's: only its parameters follow the query encoder (an
exponential moving average); its BatchNorm layers run in training mode and keep
their OWN running statistics, updated by its own forward passes. Its BatchNorm
sees the key batch through shuffle-BN (:func:`shuffle_bn_forward`): under
``torchrun`` the keys' images are shuffled across processes before the key
encoder and unshuffled after, as MoCo's ``batch_shuffle_ddp`` /
``batch_unshuffle_ddp`` do; in one process the shuffled batch is split into
virtual groups, each normalised with its own statistics. Either way a query and
its positive key are not normalised with the same batch statistics, which
removes the intra-batch-statistics shortcut MoCo describes.
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .._validation import check_positive_int
from ..distributed import GlobalBatchNorm, all_gather_with_grad, is_multi_process, replace_batchnorm

__all__ = ["FeatureQueue", "MomentumEncoder", "shuffle_bn_forward"]


class MomentumEncoder(nn.Module):
    """MoCo's key encoder: an exponential moving average of an encoder's parameters (no gradient).

    The copy runs in training mode, so its BatchNorm layers normalise with the
    key batch's statistics and update their own running statistics; only the
    parameters follow the query encoder. Synchronised BatchNorm layers of the
    source (``--sync-bn``) become per-process BatchNorm in the copy: shuffle-BN
    needs per-process (per-group) statistics, global ones would make the shuffle
    pointless.

    Args:
        encoder: the query encoder (unwrapped from DDP); it is deep-copied.
        momentum: ``m`` of ``θ_k ← m θ_k + (1 − m) θ_q``.
        bn_groups: BatchNorm groups per process for shuffle-BN (see
            :func:`shuffle_bn_forward`); 1 keeps one group per process.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> query = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        >>> key = MomentumEncoder(query, momentum=0.99, bn_groups=2)
        >>> key(torch.randn(8, 4)).shape
        torch.Size([8, 4])
        >>> key.update(query)   # parameters only: the key encoder's running statistics stay its own
    """

    def __init__(self, encoder: nn.Module, momentum: float, bn_groups: int = 1) -> None:
        super().__init__()
        self.encoder = _per_process_batchnorm(copy.deepcopy(encoder))
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(False)
        self.momentum = momentum
        self.bn_groups = check_positive_int(bn_groups, "bn_groups")
        self.train()  # MoCo's key encoder normalises with the key batch's statistics

    @torch.no_grad()
    def update(self, encoder: nn.Module) -> None:
        """θ_k ← m θ_k + (1 − m) θ_q for the parameters; buffers (BatchNorm statistics) stay the key encoder's own."""
        for key, query in zip(self.encoder.parameters(), encoder.parameters(), strict=True):
            key.mul_(self.momentum).add_(query.detach(), alpha=1 - self.momentum)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The keys of ``x`` (this process's rows), through shuffle-BN when the encoder has BatchNorm."""
        return shuffle_bn_forward(self.encoder, x, groups=self.bn_groups, generator=generator)


@torch.no_grad()
def shuffle_bn_forward(
    encoder: nn.Module, x: torch.Tensor, groups: int = 1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``encoder(x)`` with shuffle-BN: BatchNorm statistics over random groups of the (global) batch.

    Under ``torchrun`` (a collective: every rank calls it with its own rows) it
    is MoCo's ``batch_shuffle_ddp`` / ``batch_unshuffle_ddp``: gather every
    rank's rows, draw a random permutation of the global batch and broadcast
    rank 0's, let each rank encode its share of the permuted batch (as many
    rows as it brought), gather the outputs, undo the permutation and return
    this rank's rows. With ``groups`` > 1 each rank's share is further split
    into ``groups`` parts encoded separately.

    In one process it is the equivalent with virtual groups: permute the batch,
    split it into ``groups`` near-equal parts, encode each part on its own (so
    each BatchNorm layer uses that part's statistics, as ``groups`` GPUs would),
    concatenate and undo the permutation. Running statistics are then updated
    once per part (``groups`` momentum updates per step, each from one part).

    Nothing is shuffled (a plain ``encoder(x)``, no random number drawn) when
    the encoder has no BatchNorm layer in training mode, or in one process with
    ``groups == 1``: batch statistics are what shuffling changes.

    Args:
        encoder: the key encoder.
        x: this process's ``(n, ...)`` inputs.
        groups: BatchNorm groups per process (>= 1).
        generator: CPU generator for the permutation (default: the global one);
            under ``torchrun`` rank 0's permutation is used by all ranks.

    Returns:
        ``(n, ...)`` outputs in the order of ``x``, without gradient.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> encoder = nn.BatchNorm1d(3)
        >>> x = torch.randn(8, 3)
        >>> keys = shuffle_bn_forward(encoder, x, groups=2, generator=torch.Generator().manual_seed(0))
        >>> permutation = torch.randperm(8, generator=torch.Generator().manual_seed(0))
        >>> by_hand = torch.cat([encoder(part) for part in x[permutation].chunk(2)])[permutation.argsort()]
        >>> torch.allclose(keys, by_hand)
        True
    """
    groups = check_positive_int(groups, "groups")
    multi_process = is_multi_process()
    if not _normalises_by_batch(encoder) or (groups == 1 and not multi_process):
        return encoder(x)
    if not multi_process:
        permutation = torch.randperm(x.shape[0], generator=generator).to(x.device)
        return _grouped_forward(encoder, x[permutation], groups)[permutation.argsort()]
    rows = _rows_per_rank(x)
    everyone = all_gather_with_grad(x)  # the global batch, in rank order (no graph under no_grad)
    permutation = torch.randperm(everyone.shape[0], generator=generator).to(x.device)
    dist.broadcast(permutation, src=0)
    rank = dist.get_rank()
    start, stop = sum(rows[:rank]), sum(rows[: rank + 1])
    shuffled_keys = all_gather_with_grad(_grouped_forward(encoder, everyone[permutation[start:stop]], groups))
    # shuffled_keys[j] belongs to global row permutation[j]: global row i sits at argsort(permutation)[i].
    return shuffled_keys[permutation.argsort()[start:stop]]


def _grouped_forward(encoder: nn.Module, x: torch.Tensor, groups: int) -> torch.Tensor:
    if groups == 1:
        return encoder(x)
    return torch.cat([encoder(part) for part in x.tensor_split(groups) if part.shape[0] > 0])


def _rows_per_rank(x: torch.Tensor) -> list[int]:
    rows = all_gather_with_grad(torch.tensor([x.shape[0]], dtype=torch.int64, device=x.device))
    counts: list[int] = rows.tolist()
    return counts


def _normalises_by_batch(encoder: nn.Module) -> bool:
    """Whether some BatchNorm layer of ``encoder`` uses batch statistics (training mode)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in encoder.modules())


class _ProcessBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Plain BatchNorm over this process's (or group's) rows, for any ``(N, C, ...)`` input."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {input.dim()}-D")


def _per_process_batchnorm(module: nn.Module) -> nn.Module:
    """Replace synchronised BatchNorm (``nn.SyncBatchNorm``, :class:`GlobalBatchNorm`) by per-process BatchNorm."""
    return replace_batchnorm(
        module, lambda layer: isinstance(layer, (nn.SyncBatchNorm, GlobalBatchNorm)), _ProcessBatchNorm
    )


class FeatureQueue(nn.Module):
    """A FIFO ring buffer of the last ``size`` key features, initialised uniformly on the sphere."""

    features: torch.Tensor
    pointer: torch.Tensor

    def __init__(self, size: int, dim: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.register_buffer("features", F.normalize(torch.randn(size, dim, generator=generator), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, keys: torch.Tensor) -> None:
        """Overwrite the oldest entries with ``keys`` (wrapping around the end)."""
        size = self.features.shape[0]
        keys = keys.detach().to(self.features.dtype)[-size:]
        positions = (self.pointer + torch.arange(keys.shape[0], device=keys.device)) % size
        self.features[positions] = keys
        self.pointer.fill_(int((self.pointer + keys.shape[0]) % size))
