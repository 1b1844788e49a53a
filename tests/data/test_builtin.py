"""aligniform.data.builtin: the bundled mnist5k and digits datasets and their fixed splits."""

from __future__ import annotations

import pytest
import torch

from aligniform.data import load_dataset


def test_mnist5k_fixed_stratified_split():
    train = load_dataset("mnist5k", split="train")
    test = load_dataset("mnist5k", split="test")
    assert train.images.shape == (4000, 1, 28, 28) and test.images.shape == (1000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and int(train.images.max()) == 255
    assert torch.bincount(train.labels).tolist() == [400] * 10
    assert torch.bincount(test.labels).tolist() == [100] * 10
    assert train.classes == [str(d) for d in range(10)] and train.name == "mnist5k"
    # Deterministic, and the two splits hold different images that together make up "all".
    again = load_dataset("mnist5k", split="test")
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)
    rows = {bytes(img.numpy()) for img in train.images}
    assert not rows & {bytes(img.numpy()) for img in test.images}
    everything = load_dataset("mnist5k", split="all")
    assert len(everything) == 5000
    assert sorted(rows | {bytes(img.numpy()) for img in test.images}) == sorted(
        {bytes(img.numpy()) for img in everything.images}
    )


def test_digits_value_range_and_split():
    ds = load_dataset("digits", split="all")
    assert ds.images.shape == (1797, 1, 8, 8) and ds.images.dtype == torch.uint8
    assert int(ds.images.min()) == 0 and int(ds.images.max()) == 255
    allowed = {round(v * 255 / 16) for v in range(17)}
    assert set(ds.images.unique().tolist()) <= allowed
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    assert (len(train), len(test)) == (1438, 359)
    assert torch.bincount(test.labels).min() >= 34
    small = load_dataset("digits", split="test", image_size=4)
    assert small.images.shape == (359, 1, 4, 4)
    with pytest.raises(ValueError, match="`image_size` must be a positive integer"):
        load_dataset("digits", image_size=0)
