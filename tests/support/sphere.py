"""Test data: points on the sphere, noisy views of them, and autograd leaves for gradcheck.

Two ways to seed: ``sphere`` and ``positive_pairs`` take a seed (the tests of one loss each draw their own
points); ``unit_rows``, ``noisy_pairs`` and ``raw_views`` draw from a generator the caller passes, so a batch
drawn in several steps (points, then a queue, then labels) is one reproducible stream.
"""

import numpy as np
import torch
import torch.nn.functional as F


def unit_rows(n, d, generator, dtype=torch.float64):
    """n points uniformly on S^{d-1}, drawn from ``generator``."""
    return F.normalize(torch.randn(n, d, generator=generator, dtype=dtype), dim=1)


def sphere(n, d, seed=0, dtype=torch.float64):
    """n points uniformly on S^{d-1}."""
    return unit_rows(n, d, torch.Generator().manual_seed(seed), dtype)


def positive_pairs(n, d, noise=0.3, seed=0, dtype=torch.float64):
    """(x, y) with y a noisy copy of x, both unit-norm."""
    generator = torch.Generator().manual_seed(seed + 1)
    x = sphere(n, d, seed, dtype)
    y = F.normalize(x + noise * torch.randn(n, d, generator=generator, dtype=dtype), dim=1)
    return x, y


def noisy_pairs(n, d, noise, generator, dtype=torch.float64):
    """(x, y) unit-norm, y = x plus ``noise`` times Gaussian noise, renormalised; both drawn from ``generator``."""
    x = unit_rows(n, d, generator, dtype)
    return x, F.normalize(x + noise * torch.randn(n, d, generator=generator, dtype=dtype), dim=1)


def raw_views(n, d, noise, generator, dtype=torch.float64):
    """Two views of n raw (not unit-norm) inputs: Gaussian rows, and the same rows plus ``noise`` times noise."""
    first = torch.randn(n, d, generator=generator, dtype=dtype)
    return first, first + noise * torch.randn(n, d, generator=generator, dtype=dtype)


def leaves(*values):
    """Fresh autograd leaves (gradcheck's inputs): tensors copied, numbers as float64 scalars; all require grad."""

    def leaf(value):
        copy = value.detach().clone() if torch.is_tensor(value) else torch.tensor(value, dtype=torch.float64)
        return copy.requires_grad_()

    return tuple(leaf(value) for value in values)


def normalize_rows(a):
    """A numpy array's rows scaled to unit norm."""
    return a / np.linalg.norm(a, axis=1, keepdims=True)
