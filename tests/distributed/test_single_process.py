"""Every trainer helper of aligniform.distributed keeps its one-process meaning without torchrun."""

import torch
from torch import nn

from aligniform.distributed import (
    DistributedContext,
    barrier,
    broadcast_object,
    convert_sync_batchnorm,
    reduce_mean,
    seed_worker,
    unwrap_model,
    wrap_ddp,
)


def test_single_process_helpers(no_torchrun):
    assert reduce_mean(2.5) == 2.5
    value = torch.tensor([1.0, 2.0])
    assert reduce_mean(value) is value
    assert broadcast_object([1, 2]) == [1, 2]
    barrier()
    assert seed_worker(3) == 3 and seed_worker(3, rank=1) != 3
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    assert wrap_ddp(model, DistributedContext()) is model
    assert unwrap_model(model) is model
    assert convert_sync_batchnorm(model, DistributedContext()) is model
