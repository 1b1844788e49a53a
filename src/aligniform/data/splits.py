"""Deterministic (optionally stratified) train/validation splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

LabelsOrCount = int | np.integer | Sequence[int] | np.ndarray | torch.Tensor


def _allocate(class_sizes: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` validation samples across classes proportionally to their sizes.

    Largest-remainder rounding: every class gets the floor of its exact quota and
    the leftover samples go to the classes with the largest fractional parts
    (ties to the lower class index), so the counts always sum to ``total``.
    """
    quota = class_sizes * (total / class_sizes.sum())
    counts = np.floor(quota).astype(np.int64)
    leftover = int(total - counts.sum())
    if leftover:
        order = np.lexsort((np.arange(len(quota)), -(quota - counts)))
        counts[order[:leftover]] += 1
    return np.minimum(counts, class_sizes)


def train_val_split(labels_or_n: LabelsOrCount, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into disjoint train and validation sets.

    The result depends only on the arguments, never on global random state.
    With labels, the split is stratified: each class contributes (up to
    rounding) ``val_fraction`` of its samples to the validation set, and the
    validation set has exactly ``round(n * val_fraction)`` samples.

    Args:
        labels_or_n: Either the number of samples ``n`` (a plain random split)
            or a 1-D sequence/array/tensor of integer labels (stratified split;
            ``-1`` labels are treated as one more group).
        val_fraction: Fraction of samples for validation, in ``[0, 1)``.
        seed: Non-negative integer seed.

    Returns:
        ``(train_indices, val_indices)``: sorted ``int64`` arrays that are
        disjoint and together cover ``range(n)``.

    Raises:
        ValueError: an argument has the wrong type or range, or the split would
            leave the train set empty.

    Examples:
        >>> train, val = train_val_split([0, 0, 1, 1, 1, 1, 0, 0, 1, 1], 0.2, seed=0)
        >>> len(train), len(val)
        (8, 2)
        >>> sorted(np.array([0, 0, 1, 1, 1, 1, 0, 0, 1, 1])[val].tolist())
        [0, 1]
        >>> train_val_split(5, 0.4, seed=1)[1].shape
        (2,)
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float, np.floating, np.integer)):
        raise ValueError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    val_fraction = float(val_fraction)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")

    labels: np.ndarray | None
    if isinstance(labels_or_n, (int, np.integer)) and not isinstance(labels_or_n, bool):
        n = int(labels_or_n)
        labels = None
    elif isinstance(labels_or_n, (bool, float, str, bytes)):
        raise ValueError(f"labels_or_n must be a sample count or a 1-D array of integer labels, got {labels_or_n!r}")
    else:
        if isinstance(labels_or_n, torch.Tensor):
            labels_or_n = labels_or_n.detach().cpu().numpy()
        labels = np.asarray(labels_or_n)
        if labels.ndim == 0 and np.issubdtype(labels.dtype, np.integer):
            n, labels = int(labels), None  # a 0-d array holding a count
        elif labels.ndim != 1:
            raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
        elif labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
        else:
            n = int(labels.shape[0])
    if n < 1:
        raise ValueError(f"need at least one sample to split, got n={n}")

    n_val = int(round(n * val_fraction))
    if n_val >= n:
        raise ValueError(f"val_fraction={val_fraction} of n={n} samples leaves no training samples")
    rng = np.random.default_rng(int(seed))
    if labels is None or n_val == 0:
        val = rng.permutation(n)[:n_val]
    else:
        classes, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
        per_class = _allocate(sizes, n_val)
        # One permutation for the whole array, then a stable sort by class:
        # each class's indices come out in a seed-dependent random order.
        perm = rng.permutation(n)
        grouped = perm[np.argsort(inverse[perm], kind="stable")]
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        val = (
            np.concatenate([grouped[s : s + k] for s, k in zip(starts, per_class)])
            if len(classes)
            else np.empty(0, np.int64)
        )
    is_val = np.zeros(n, dtype=bool)
    is_val[val] = True
    return np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64)
