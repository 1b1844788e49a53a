"""aligniform.data.splits: the stratified, seeded train_val_split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aligniform.data import train_val_split


def test_train_val_split_stratified_deterministic_disjoint():
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    train, val = train_val_split(labels, 0.2, seed=3)
    assert len(val) == 20 and len(train) == 80
    assert np.bincount(labels[val]).tolist() == [10, 6, 3, 1]
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    assert train.dtype == np.int64 and not set(train) & set(val)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    again_train, again_val = train_val_split(torch.from_numpy(labels), 0.2, seed=3)
    assert np.array_equal(again_val, val) and np.array_equal(again_train, train)
    assert not np.array_equal(train_val_split(labels, 0.2, seed=4)[1], val)


def test_train_val_split_from_count():
    train, val = train_val_split(10, 0.3, seed=0)
    assert len(val) == 3 and len(train) == 7
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(10))
    assert np.array_equal(train_val_split(np.int64(10), 0.3, seed=0)[1], val)
    empty_train, empty_val = train_val_split(4, 0.0, seed=0)
    assert empty_train.tolist() == [0, 1, 2, 3] and empty_val.size == 0


@pytest.mark.parametrize(
    "args, match",
    [
        ((10, 1.0, 0), "val_fraction must be in"),
        ((10, -0.1, 0), "val_fraction must be in"),
        ((10, "0.2", 0), "val_fraction must be a number"),
        ((10, 0.2, -1), "seed must be a non-negative integer"),
        ((10, 0.2, 1.5), "seed must be a non-negative integer"),
        ((np.zeros((2, 5), int), 0.2, 0), "labels must be 1-D"),
        ((np.array([0.5, 1.0, 2.0]), 0.2, 0), "labels must be integers"),
        ((0, 0.2, 0), "at least one sample"),
        ((2, 0.9, 0), "leaves no training samples"),
        ((True, 0.2, 0), "labels_or_n must be"),
    ],
)
def test_train_val_split_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        train_val_split(*args)
