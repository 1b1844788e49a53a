"""The global batch: differentiable gathers and sums over every rank's features.

Gradient convention shared by :func:`all_gather_with_grad` and
:func:`all_reduce_sum`: a rank's input feeds every rank's output, so its
gradient is the SUM over ranks of the gradients arriving there. Together with
DDP's averaging this gives exactly the single-process gradient (see
:func:`all_gather_with_grad` and ``docs/distributed.md``).

Why not ``torch.distributed.nn.all_gather``: it needs every rank to hold the same number of rows (the last batch
of an epoch, or a sharded loss's uneven split, does not); its gradient convention (the sum over ranks) is the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.autograd.function import once_differentiable

from .context import is_multi_process

__all__ = ["all_gather_with_grad", "all_reduce_sum", "gather_pairs"]

# The shape exchange before a gather sends a fixed-length header per rank:
# [ndim, dtype code, size_0, ..., size_{MAX_DIMS-1}].
_MAX_DIMS = 8
_DTYPE_CODES = {
    dtype: code
    for code, dtype in enumerate(
        (torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8, torch.bool)
    )
}
_DTYPE_NAMES = {code: str(dtype).removeprefix("torch.") for dtype, code in _DTYPE_CODES.items()}


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``(n_r, ...)`` tensor along dim 0, in rank order, keeping the gradient.

    Ranks may hold different numbers of rows ``n_r`` (the last batch of an
    epoch, say); the trailing dimensions and the dtype must agree. Without a
    process group, or with one process, the input is returned unchanged.

    Gradient: every rank computes the same loss ``L`` of the gathered batch
    ``X = [x_0; ...; x_{P-1}]`` and DistributedDataParallel then averages the
    parameter gradients over the ``P`` ranks. On rank r autograd only reaches
    the parameters through the local block ``x_r`` (the other blocks arrived
    over the network), so the backward gives ``x_r`` the SUM over ranks of the
    gradient each rank's copy of the loss sends to block r (a reduce-scatter of
    the incoming gradient onto each rank's rows). With identical losses that
    is ``P · ∂L/∂x_r``, and DDP's division by ``P`` leaves exactly
    ``Σ_r (∂L/∂x_r)(∂x_r/∂θ) = ∂L/∂θ``: the single-process gradient on the
    whole batch. Returning only the local slice would make every update ``P``
    times too small. The same holds when each rank computes only its share of
    ``L`` from the gathered rows and the shares are combined by differentiable
    collectives (the sharded losses, :class:`~aligniform.distributed.Shard`):
    what matters is that every rank ends with the same ``L``. When the ranks'
    losses differ (per-rank queues, say) the
    result is the exact gradient of their mean.

    Every rank must call this, the same number of times and in the same order,
    and use the result in its loss: the backward is a collective too.

    Args:
        tensor: this rank's ``(n_r, ...)`` tensor (rows may be 0).

    Returns:
        ``(Σ_r n_r, ...)`` tensor on every rank, differentiable with respect to ``tensor``.

    Raises:
        ValueError: when the ranks' tensors differ in trailing shape, number
            of dimensions or dtype (raised on every rank alike, so none hangs).

    Examples:
        >>> import torch
        >>> x = torch.randn(4, 8, requires_grad=True)
        >>> all_gather_with_grad(x) is x          # a single process: the identity
        True
    """
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"all_gather_with_grad expects a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() == 0:
        raise ValueError("all_gather_with_grad needs a tensor with a row dimension, got a 0-dim tensor")
    if not is_multi_process():
        return tensor
    gathered: torch.Tensor = _AllGatherWithGrad.apply(tensor)
    return gathered


class _AllGatherWithGrad(torch.autograd.Function):
    """Forward: all_gather with padding for unequal rows. Backward: reduce_scatter(SUM) to each rank's rows."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, row_counts: Sequence[int] | None = None) -> torch.Tensor:
        # Known counts (a Shard exchanged them once per step) skip the header exchange.
        row_counts = _exchange_row_counts(tensor) if row_counts is None else list(row_counts)
        ctx.counts = row_counts
        return _gather_rows(tensor.contiguous(), row_counts)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        # Σ over ranks of the incoming gradient, this rank's rows only: a reduce-scatter (half the
        # traffic of an all-reduce), on blocks padded to the largest shard as in the forward.
        counts = ctx.counts
        most = max(counts)
        blocks = [
            torch.cat([block, block.new_zeros((most - rows, *block.shape[1:]))]) if rows < most else block
            for block, rows in zip(grad_output.split(counts), counts)
        ]
        mine = torch.empty_like(blocks[0])
        dist.reduce_scatter(mine, [block.contiguous() for block in blocks], op=dist.ReduceOp.SUM)
        return mine[: counts[dist.get_rank()]], None


def _shape_header(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.dim() > _MAX_DIMS:
        raise ValueError(f"all_gather_with_grad supports up to {_MAX_DIMS} dimensions, got {tensor.dim()}")
    sizes = list(tensor.shape) + [0] * (_MAX_DIMS - tensor.dim())
    dtype_code = _DTYPE_CODES.get(tensor.dtype, -1)
    return torch.tensor([tensor.dim(), dtype_code, *sizes], dtype=torch.int64, device=tensor.device)


def _exchange_row_counts(tensor: torch.Tensor) -> list[int]:
    """Every rank's row count, after checking that all ranks agree on everything but the rows."""
    header = _shape_header(tensor)
    headers = [torch.empty_like(header) for _ in range(dist.get_world_size())]
    dist.all_gather(headers, header)
    table = torch.stack(headers).cpu()
    # Everything but the row count (column 2) must agree. Every rank sees the
    # same table, so every rank raises alike and none is left waiting.
    agreed = torch.cat([table[:, :2], table[:, 3:]], dim=1)
    if not bool((agreed == agreed[0]).all()):
        shapes = [tuple(row[2 : 2 + int(row[0])].tolist()) for row in table]
        dtypes = [_DTYPE_NAMES.get(int(code), "other") for code in table[:, 1]]
        raise ValueError(
            "all_gather_with_grad: the ranks' tensors must agree in dtype and in every dimension but "
            f"the first; got shapes {shapes} and dtypes {dtypes} by rank"
        )
    row_counts: list[int] = table[:, 2].tolist()
    return row_counts


def _gather_rows(tensor: torch.Tensor, row_counts: list[int]) -> torch.Tensor:
    """all_gather of tensors whose row counts differ: pad to the largest, gather, trim, concatenate."""
    most_rows = max(row_counts)
    padding = most_rows - tensor.shape[0]
    padded = torch.cat([tensor, tensor.new_zeros((padding, *tensor.shape[1:]))]) if padding else tensor
    pieces = [torch.empty_like(padded) for _ in row_counts]
    dist.all_gather(pieces, padded)
    return torch.cat([piece[:rows] for piece, rows in zip(pieces, row_counts)])


def gather_pairs(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The global ``(X, Y)`` of two views, with gradient, in one collective.

    Row i of ``X`` stays paired with row i of ``Y``: both come from the same
    rank and position. The views travel stacked, so a step costs one
    all-gather (and one reduce-scatter in backward) instead of two.

    Args:
        x: this rank's ``(n_r, d)`` features of the first views.
        y: this rank's ``(n_r, d)`` features of the second views.

    Returns:
        ``(X, Y)``, each ``(Σ_r n_r, d)``; ``(x, y)`` themselves for a single process.

    Examples:
        >>> import torch
        >>> x, y = torch.randn(2, 4, 8).unbind(0)
        >>> X, Y = gather_pairs(x, y)
        >>> X.shape
        torch.Size([4, 8])
    """
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise ValueError("gather_pairs expects two tensors")
    if x.shape != y.shape or x.dtype != y.dtype or x.device != y.device:
        raise ValueError(
            f"x and y must have the same shape, dtype and device (one row per positive pair), got "
            f"{tuple(x.shape)} {x.dtype} {x.device} and {tuple(y.shape)} {y.dtype} {y.device}"
        )
    if not is_multi_process():
        return x, y
    both = all_gather_with_grad(torch.stack([x, y], dim=1))
    return both[:, 0], both[:, 1]


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Differentiable all-reduce (sum) of a tensor of the same shape on every rank; the identity for one process.

    Examples:
        >>> import torch
        >>> all_reduce_sum(torch.tensor([1.0, 2.0]))
        tensor([1., 2.])
    """
    if not is_multi_process():
        return tensor
    total: torch.Tensor = _AllReduceSum.apply(tensor)
    return total


class _AllReduceSum(torch.autograd.Function):
    """y = Σ_r x_r on every rank. Backward: each rank's x_r feeds every rank's y, so its gradient is the sum of
    all ranks' incoming gradients.
    """

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        grad = grad_output.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad
