"""Test data on the sphere."""

import torch
import torch.nn.functional as F


def sphere(n, d, seed=0, dtype=torch.float64):
    """n points uniformly on S^{d-1}."""
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=generator, dtype=dtype), dim=1)


def positive_pairs(n, d, noise=0.3, seed=0, dtype=torch.float64):
    """(x, y) with y a noisy copy of x, both unit-norm."""
    generator = torch.Generator().manual_seed(seed + 1)
    x = sphere(n, d, seed, dtype)
    y = F.normalize(x + noise * torch.randn(n, d, generator=generator, dtype=dtype), dim=1)
    return x, y
