"""Collectives a trainer needs besides the loss: a mean for logging, an object from one rank, a barrier.

Each is a no-op (returns its input) for a single process, so a trainer needs
no ``if distributed:`` branches.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar, overload

import torch
import torch.distributed as dist

from .context import is_multi_process

__all__ = ["average_gradients", "barrier", "broadcast_object", "reduce_mean"]

T = TypeVar("T")


def _collective_device() -> torch.device:
    """NCCL only moves CUDA tensors; gloo works on CPU tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@overload
def reduce_mean(value: torch.Tensor) -> torch.Tensor: ...
@overload
def reduce_mean(value: float) -> float: ...
def reduce_mean(value: torch.Tensor | float) -> torch.Tensor | float:
    """Mean of a number or tensor over all ranks (e.g. for logging); the value itself for one process.

    Args:
        value: a Python number or a tensor (same shape on every rank).

    Returns:
        A float for a number; for a tensor, a detached floating tensor on the
        input's device.

    Examples:
        >>> reduce_mean(2.5)
        2.5
    """
    if not is_multi_process():
        return value
    if isinstance(value, torch.Tensor):
        dtype = value.dtype if value.is_floating_point() else torch.float64
        total = value.detach().to(device=_collective_device(), dtype=dtype, copy=True)
    else:
        total = torch.tensor(float(value), dtype=torch.float64, device=_collective_device())
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    mean = total / dist.get_world_size()
    return mean.to(value.device) if isinstance(value, torch.Tensor) else float(mean)


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s picklable ``obj`` on every rank (e.g. a run directory chosen by rank 0).

    Examples:
        >>> broadcast_object({"run": "runs/a"})
        {'run': 'runs/a'}
    """
    if not is_multi_process():
        return obj
    if not 0 <= src < dist.get_world_size():
        raise ValueError(f"src must be a rank in [0, {dist.get_world_size()}), got {src}")
    holder = [obj if dist.get_rank() == src else None]
    dist.broadcast_object_list(holder, src=src)
    received: T = holder[0]  # type: ignore[assignment]  # rank src's object, filled in by the broadcast
    return received


def barrier() -> None:
    """Wait until every rank arrives (a no-op for one process).

    Examples:
        >>> barrier()
    """
    if not is_multi_process():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def average_gradients(parameters: Iterable[torch.Tensor]) -> None:
    """Average the ``.grad`` of parameters outside DDP over the ranks, in place, as DDP does for its module.

    For a parameter every rank holds a copy of, such as a learnable temperature
    of the objective: after a sharded loss's backward each rank's gradient is
    ``P`` times its own part, and the mean over ranks is then the one-process
    gradient (see ``docs/distributed.md``). One all-reduce for all of them;
    parameters without a gradient on every rank are skipped (a no-op for one
    process).

    Examples:
        >>> import torch
        >>> p = torch.nn.Parameter(torch.tensor(1.0))
        >>> p.grad = torch.tensor(3.0)
        >>> average_gradients([p]); p.grad
        tensor(3.)
    """
    if not is_multi_process():
        return
    grads = [parameter.grad for parameter in parameters if parameter.grad is not None]
    if not grads:
        return
    flat = torch.cat([grad.detach().reshape(-1) for grad in grads]).to(_collective_device())
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    for grad, piece in zip(grads, flat.split([grad.numel() for grad in grads])):
        grad.copy_(piece.view_as(grad))
