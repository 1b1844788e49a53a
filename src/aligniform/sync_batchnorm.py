"""BatchNorm over the global batch on any torch.distributed backend, gloo on CPU included.

PyTorch's ``nn.SyncBatchNorm`` only runs on CUDA tensors. This module
computes the batch mean and variance with differentiable all-reduces, so
CPU (gloo) training with several processes normalises exactly as one process
holding the whole batch would. On CUDA aligniform uses PyTorch's fused
``nn.SyncBatchNorm`` instead.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.autograd.function import once_differentiable


class _AllReduceSum(torch.autograd.Function):
    """y = Σ_r x_r on every rank. Backward: each rank's x_r feeds every rank's y, so its
    gradient is the sum of all ranks' incoming gradients (the same convention as
    :func:`aligniform.distributed.all_gather_with_grad`).
    """

    @staticmethod
    def forward(ctx, tensor):
        total = tensor.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        grad = grad_output.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Differentiable all-reduce (sum); the identity without a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    return _AllReduceSum.apply(tensor)


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics cover the batches of all processes.

    Two passes, like single-process BatchNorm: the global mean, then the global
    mean squared deviation (numerically safer than E[x²] − E[x]²). Running
    statistics get the unbiased variance, as in ``nn.BatchNorm``. In eval mode,
    or without a process group, it is plain BatchNorm.

    Examples:
        >>> layer = GlobalBatchNorm(8)
        >>> layer(torch.randn(4, 8)).shape
        torch.Size([4, 8])
    """

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {input.dim()}-D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not (self.training and distributed):
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
    def _update_running_stats(self, mean, variance, count) -> None:
        if not self.track_running_stats:
            return
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = variance * count / max(count - 1, 1)
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)


def convert_to_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer of ``module`` by a :class:`GlobalBatchNorm` with the same state."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        like = module.weight if module.affine else module.running_mean  # dtype and device to keep
        factory = {} if like is None else {"device": like.device, "dtype": like.dtype}
        converted = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats, **factory
        )
        converted.load_state_dict(module.state_dict())
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        module.add_module(name, convert_to_global_batchnorm(child))
    return module
