"""BatchNorm over the global batch: PyTorch's ``nn.SyncBatchNorm`` on CUDA, :class:`GlobalBatchNorm` elsewhere.

PyTorch's ``nn.SyncBatchNorm`` only runs on CUDA tensors. :class:`GlobalBatchNorm`
computes the batch mean and variance with differentiable all-reduces, so
CPU (gloo) training with several processes normalises exactly as one process
holding the whole batch would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .context import DistributedContext, is_multi_process
from .gather import all_reduce_sum

__all__ = ["GlobalBatchNorm", "convert_sync_batchnorm", "convert_to_global_batchnorm"]


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics cover the batches of all processes.

    Two passes, like single-process BatchNorm: the global mean, then the global
    mean squared deviation (numerically safer than E[x²] − E[x]²). Running
    statistics get the unbiased variance, as in ``nn.BatchNorm``. In eval mode,
    or without a process group, it is plain BatchNorm.

    Examples:
        >>> import torch
        >>> layer = GlobalBatchNorm(8)
        >>> layer(torch.randn(4, 8)).shape
        torch.Size([4, 8])
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {input.dim()}-D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Normalise ``input`` (N, C, ...) with the global batch's statistics in training, else as BatchNorm."""
        if not (self.training and is_multi_process()):
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = all_reduce_sum(input.new_tensor([input.numel() / input.shape[1]]))
        mean = all_reduce_sum(input.sum(dims)) / count
        centred = input - mean.view(shape)
        variance = all_reduce_sum(centred.pow(2).sum(dims)) / count
        self._update_running_stats(mean.detach(), variance.detach(), count.item())
        output = centred * torch.rsqrt(variance.view(shape) + self.eps)
        if self.affine:
            output = output * self.weight.view(shape) + self.bias.view(shape)
        return output

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, variance: torch.Tensor, count: float) -> None:
        if not self.track_running_stats:
            return
        assert self.num_batches_tracked is not None and self.running_mean is not None and self.running_var is not None
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = variance * count / max(count - 1, 1)
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)


def replace_batchnorm(
    module: nn.Module,
    selected: Callable[[nn.Module], bool],
    new_class: type[nn.modules.batchnorm._BatchNorm],
) -> nn.Module:
    """Replace every BatchNorm layer that ``selected`` picks by ``new_class`` with the same options, state and mode.

    The one place that swaps BatchNorm implementations: synchronised across processes
    (:func:`convert_to_global_batchnorm`) or back to per-process statistics (MoCo's key encoder).

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        >>> swapped = replace_batchnorm(model, lambda m: isinstance(m, nn.BatchNorm1d), GlobalBatchNorm)
        >>> type(swapped[1]).__name__
        'GlobalBatchNorm'
    """
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and selected(module):
        like = module.weight if module.affine else module.running_mean  # dtype and device to keep
        factory: dict[str, Any] = {} if like is None else {"device": like.device, "dtype": like.dtype}
        converted = new_class(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats, **factory
        )
        converted.load_state_dict(module.state_dict())
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        module.add_module(name, replace_batchnorm(child, selected, new_class))
    return module


def convert_to_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer of ``module`` by a :class:`GlobalBatchNorm` with the same state.

    Examples:
        >>> from torch import nn
        >>> converted = convert_to_global_batchnorm(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))
        >>> type(converted[1]).__name__
        'GlobalBatchNorm'
    """
    return replace_batchnorm(module, lambda layer: not isinstance(layer, GlobalBatchNorm), GlobalBatchNorm)


def convert_sync_batchnorm(model: nn.Module, ctx: DistributedContext) -> nn.Module:
    """Replace BatchNorm layers by synchronised ones when several processes train together.

    Plain BatchNorm normalises each rank's shard with that shard's statistics;
    synchronised BatchNorm uses the global batch's, as one process would. On
    CUDA this is PyTorch's fused ``nn.SyncBatchNorm``; PyTorch's only works on
    CUDA tensors, so on CPU (gloo) it is :class:`GlobalBatchNorm`.

    Args:
        model: the encoder; it is converted in place where possible.
        ctx: this process's context.

    Returns:
        The model with synchronised BatchNorm layers; ``model`` itself for one
        process or a model without BatchNorm.

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        >>> convert_sync_batchnorm(model, DistributedContext()) is model
        True
    """
    if not ctx.is_distributed:
        return model
    if not any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules()):
        return model
    if ctx.device.type != "cuda":
        return convert_to_global_batchnorm(model)
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)
