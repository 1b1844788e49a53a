"""Wrapping a model in DistributedDataParallel for a job, and getting it back out for a checkpoint."""

from __future__ import annotations

from typing import Any

from torch import nn

from .context import DistributedContext

__all__ = ["unwrap_model", "wrap_ddp"]


def wrap_ddp(model: nn.Module, ctx: DistributedContext, **ddp_options: Any) -> nn.Module:
    """Move ``model`` to the context's device and, for several processes, wrap it in DDP.

    Args:
        model: the encoder (whole, before any gather).
        ctx: this process's context.
        **ddp_options: passed to :class:`~torch.nn.parallel.DistributedDataParallel`.

    Returns:
        ``model`` on ``ctx.device``, inside DDP when several processes take part.

    Examples:
        >>> from torch import nn
        >>> wrap_ddp(nn.Linear(4, 2), DistributedContext())
        Linear(in_features=4, out_features=2, bias=True)
    """
    model = model.to(ctx.device)
    if not ctx.is_distributed:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, **ddp_options)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (what a checkpoint should save); other models as they are.

    Examples:
        >>> from torch import nn
        >>> layer = nn.Linear(2, 2)
        >>> unwrap_model(layer) is layer
        True
    """
    if isinstance(model, nn.parallel.DistributedDataParallel):
        inner: nn.Module = model.module
        return inner
    return model
