"""Toy embeddings shared by the analysis tests."""

import numpy as np

from tests.support.sphere import normalize_rows


def unit_pairs(n=300, d=12, classes=4, seed=0):
    """Unit-norm float64 positive pairs clustered by class, with their labels (numpy)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, d))
    x = centres[labels] + 0.8 * rng.normal(size=(n, d))
    y = x + 0.3 * rng.normal(size=(n, d))
    return normalize_rows(x), normalize_rows(y), labels
