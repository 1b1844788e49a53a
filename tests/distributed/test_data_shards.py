"""aligniform.distributed.data_shards: shard_indices is DistributedSampler's split."""

import pytest
import torch
from torch.utils.data import DistributedSampler

from aligniform.distributed import shard_indices


class _Sized:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


@pytest.mark.parametrize("n, world_size", [(10, 2), (11, 3), (7, 4), (5, 8), (1, 1)])
@pytest.mark.parametrize("drop_last", [True, False])
def test_shard_indices_matches_distributed_sampler(n, world_size, drop_last):
    for epoch in (0, 3):
        shards = [
            shard_indices(n, rank, world_size, seed=42, epoch=epoch, drop_last=drop_last) for rank in range(world_size)
        ]
        for rank, shard in enumerate(shards):
            sampler = DistributedSampler(_Sized(n), world_size, rank, shuffle=True, seed=42, drop_last=drop_last)
            sampler.set_epoch(epoch)
            assert shard.tolist() == list(sampler)
            assert shard.dtype == torch.int64
        assert len({len(shard) for shard in shards}) == 1  # equal sizes
        everything = torch.cat(shards)
        permutation = torch.randperm(n, generator=torch.Generator().manual_seed(42 + epoch))
        if drop_last:
            kept = n - n % world_size
            assert len(set(everything.tolist())) == len(everything) == kept  # disjoint
            assert sorted(everything.tolist()) == sorted(permutation[:kept].tolist())
        else:
            assert set(everything.tolist()) == set(range(n))  # every sample, some twice


def test_shard_indices_is_deterministic_per_seed_and_epoch():
    first = shard_indices(100, 1, 4, seed=3, epoch=2)
    assert torch.equal(first, shard_indices(100, 1, 4, seed=3, epoch=2))
    assert not torch.equal(first, shard_indices(100, 1, 4, seed=3, epoch=3))
    assert not torch.equal(first, shard_indices(100, 1, 4, seed=4, epoch=2))
    assert shard_indices(6, 1, 2, shuffle=False).tolist() == [1, 3, 5]
    assert shard_indices(0, 0, 2).numel() == 0


@pytest.mark.parametrize("args, message", [((10, 2, 2), "rank"), ((10, 0, 0), "world_size"), ((-1, 0, 1), "n must")])
def test_shard_indices_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        shard_indices(*args)
