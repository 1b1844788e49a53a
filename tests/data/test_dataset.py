"""aligniform.data.dataset: the registry of datasets and the ImageDataset container."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aligniform.data import DATASETS, DatasetError, ImageDataset, dataset_info, load_dataset


def test_registry_metadata_matches_the_official_archives():
    assert dataset_info("CIFAR10").md5 == "c58f30108f718f92721af3b95e74349a"
    assert DATASETS["cifar100"].md5 == "eb9058c3a382ffc7106e4002c42a8d85"
    assert DATASETS["stl10"].md5 == "91f7769df0f17e558f3565bffb0c7dfb"
    assert DATASETS["stl10"].url == "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
    assert DATASETS["stl10"].train_split == "train+unlabeled"
    assert DATASETS["mnist5k"].augmentation == "digits"
    assert DATASETS["cifar10"].augmentation == "paper"
    for info in DATASETS.values():
        assert len(info.mean) == len(info.std) == info.channels
        assert all(0 < s < 1 for s in info.std)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(DatasetError, match="unknown dataset 'mnist'.*cifar10.*mnist5k"):
        dataset_info("mnist")
    with pytest.raises(ValueError, match="stl10"):  # DatasetError is a ValueError
        load_dataset("imagenet")


def test_image_dataset_subset_and_properties():
    images = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 3, 2, 2)
    ds = ImageDataset(images, torch.tensor([0, 1, 2, 1, -1]), ["a", "b", "c"], "toy")
    assert ds.images.is_contiguous() and ds.labels.dtype == torch.int64
    assert (len(ds), ds.num_classes, ds.channels, ds.image_size) == (5, 3, 3, 2)
    sub = ds.subset(np.array([4, 1]))
    assert sub.images[:, 0, 0, 0].tolist() == [4, 1] and sub.labels.tolist() == [-1, 1]
    assert sub.classes == ["a", "b", "c"] and sub.name == "toy"
    masked = ds.subset(torch.tensor([True, False, False, True, False]))
    assert masked.labels.tolist() == [0, 1]
    assert len(ds.subset([])) == 0
    assert "n=5" in repr(ds)
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(images.float(), ds.labels, ds.classes, "toy")
    with pytest.raises(ValueError, match=r"labels must lie in \[-1, 2\]"):
        ImageDataset(images, torch.tensor([0, 1, 2, 3, 0]), ds.classes, "toy")
    with pytest.raises(ValueError, match="shape"):
        ImageDataset(images, torch.tensor([0, 1]), ds.classes, "toy")
