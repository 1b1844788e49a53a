"""aligniform.distributed.batchnorm: the conversion, and GlobalBatchNorm on 2 gloo processes against one process."""

import pytest
import torch
from torch import nn

from aligniform import contrastive_loss, uniform_loss
from aligniform.distributed import (
    DistributedContext,
    GlobalBatchNorm,
    all_gather_with_grad,
    cleanup_distributed,
    convert_sync_batchnorm,
    init_distributed,
    wrap_ddp,
)
from tests.support.distributed import Normalize, launch, rows_of

GLOBAL_BATCH = 12


def test_convert_sync_batchnorm_on_cpu_and_gpu():
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    model[1].running_mean.fill_(0.5)
    cpu_job = DistributedContext(rank=0, world_size=2, device=torch.device("cpu"), backend="gloo")
    converted = convert_sync_batchnorm(model, cpu_job)
    assert isinstance(converted[1], GlobalBatchNorm)  # PyTorch's SyncBatchNorm rejects CPU tensors
    assert torch.equal(converted[1].running_mean, torch.full((3,), 0.5))  # state carried over
    gpu_job = DistributedContext(rank=0, world_size=2, device=torch.device("cuda", 0), backend="nccl")
    converted = convert_sync_batchnorm(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), gpu_job)
    assert isinstance(converted[1], nn.SyncBatchNorm)  # conversion itself needs no GPU


def _bn_encoder() -> nn.Module:
    torch.manual_seed(11)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Linear(8, 5),
        Normalize(),
    ).double()


def _bn_images():
    generator = torch.Generator().manual_seed(12)
    return torch.randn(2, GLOBAL_BATCH, 1, 6, 6, generator=generator, dtype=torch.float64)


def _bn_step(model, first, second, gather):
    x, y = model(torch.cat([first, second])).chunk(2)  # both views in one pass, as the trainer does
    x, y = gather(x), gather(y)
    loss = contrastive_loss(x, y, 0.5) + uniform_loss(x, 2.0)
    loss.backward()
    module = model.module if hasattr(model, "module") else model
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    stats = {name: b.clone() for name, b in module.named_buffers() if "running" in name}
    return loss.detach(), grads, stats


def _global_batchnorm_worker(rank):
    ctx = init_distributed(device="cpu", timeout_s=60)
    model = wrap_ddp(convert_sync_batchnorm(_bn_encoder(), ctx), ctx)
    first, second = (view[rows_of(rank, [GLOBAL_BATCH // 2] * 2)] for view in _bn_images())
    result = _bn_step(model, first, second, all_gather_with_grad)
    cleanup_distributed()
    return result


@pytest.mark.slow
def test_global_batchnorm_matches_one_process_batchnorm(tmp_path):
    results = launch(_global_batchnorm_worker, tmp_path)
    first, second = _bn_images()
    loss, grads, stats = _bn_step(_bn_encoder(), first, second, lambda t: t)
    for rank_loss, rank_grads, rank_stats in results.values():
        torch.testing.assert_close(rank_loss, loss, rtol=1e-12, atol=1e-12)
        for name in grads:  # after DDP's averaging
            torch.testing.assert_close(
                rank_grads[name], grads[name], rtol=1e-9, atol=1e-12, msg=lambda m, name=name: f"{name}: {m}"
            )
        for name in stats:
            torch.testing.assert_close(rank_stats[name], stats[name], rtol=1e-12, atol=1e-12, msg=name)
