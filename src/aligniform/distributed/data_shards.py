"""Per-rank data: each rank's share of an epoch's samples and its own random streams."""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["seed_worker", "shard_indices"]


def seed_worker(seed: int, rank: int | None = None) -> int:
    """Seed Python's, NumPy's and torch's generators for this rank and return the seed used.

    Rank 0 uses ``seed`` itself (so a one-process run is unchanged); other
    ranks use a seed derived from ``(seed, rank)``, so their augmentations
    differ but stay reproducible. Model initialisation need not match across
    ranks: DDP copies rank 0's parameters when it wraps the model.

    Args:
        seed: the experiment's seed.
        rank: this process's rank (default: the current rank, 0 without a group).

    Returns:
        The seed this process's generators now use.

    Examples:
        >>> seed_worker(7, rank=0)
        7
        >>> seed_worker(7, rank=1) != 7
        True
    """
    if rank is None:
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    seed, rank = int(seed), int(rank)
    if rank == 0:
        process_seed = seed
    else:
        # SeedSequence mixes (seed, rank) so that e.g. (0, 1) and (1, 0) do not collide.
        process_seed = int(np.random.SeedSequence([seed % 2**64, rank]).generate_state(1)[0])
    random.seed(process_seed)
    np.random.seed(process_seed % 2**32)
    torch.manual_seed(process_seed)
    return process_seed


def shard_indices(
    n: int,
    rank: int,
    world_size: int,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = True,
    shuffle: bool = True,
) -> torch.Tensor:
    """This rank's sample indices for one epoch of an in-memory dataset of ``n`` samples.

    Exactly the indices of ``torch.utils.data.DistributedSampler(dataset,
    world_size, rank, shuffle, seed, drop_last)`` after ``set_epoch(epoch)``:
    a permutation drawn from ``seed + epoch`` (the same on every rank), cut to
    a multiple of ``world_size`` (``drop_last``) or padded by wrapping around,
    then rank r takes positions ``r, r + P, r + 2P, ...``. The ranks' shards
    are disjoint (with ``drop_last``) and equally long, so every rank runs the
    same number of steps and no collective waits for a rank that has finished.

    Args:
        n: dataset size.
        rank: this process's rank.
        world_size: number of processes.
        seed: experiment seed.
        epoch: epoch number; each epoch gets a new permutation.
        drop_last: drop the last ``n % world_size`` samples of the permutation
            instead of repeating its first ones.
        shuffle: permute (training) or keep the order (evaluation).

    Returns:
        1-D int64 tensor of ``n // world_size`` (``drop_last``) or
        ``ceil(n / world_size)`` indices.

    Examples:
        >>> a = shard_indices(10, rank=0, world_size=2, seed=0, epoch=3)
        >>> b = shard_indices(10, rank=1, world_size=2, seed=0, epoch=3)
        >>> sorted(a.tolist() + b.tolist()) == list(range(10))
        True
    """
    n, rank, world_size = int(n), int(rank), int(world_size)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, world_size={world_size}), got {rank}")
    if shuffle:
        generator = torch.Generator().manual_seed(int(seed) + int(epoch))
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.arange(n)
    if drop_last:
        order = order[: n - n % world_size]
    elif n % world_size:
        if n == 0:
            return order
        padded_size = -(-n // world_size) * world_size
        order = order.repeat(-(-padded_size // n))[:padded_size]
    return order[rank::world_size]
