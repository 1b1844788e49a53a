"""Collectives a trainer needs besides the loss: a mean for logging, an object from one rank, a barrier.

Each is a no-op (returns its input) for a single process, so a trainer needs
no ``if distributed:`` branches.
"""

from __future__ import annotations

from typing import TypeVar, overload

import torch
import torch.distributed as dist

from .context import is_multi_process

__all__ = ["barrier", "broadcast_object", "reduce_mean"]

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
