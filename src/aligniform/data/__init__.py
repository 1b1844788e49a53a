"""Datasets for aligniform: in-memory image tensors, fixed splits, verified downloads.

Examples:
    >>> from aligniform.data import load_dataset, dataset_info, train_val_split
    >>> train = load_dataset("mnist5k", split="train")
    >>> info = dataset_info("mnist5k")
    >>> info.channels, info.image_size, len(train)
    (1, 28, 4000)
    >>> fit, val = train_val_split(train.labels.numpy(), 0.1, seed=0)
    >>> len(fit), len(val)
    (3600, 400)
"""

from .builtin import load_digits, load_mnist5k
from .dataset import (
    DATASETS,
    DatasetError,
    DatasetInfo,
    ImageDataset,
    dataset_info,
    resize_images,
)
from .download import download_and_extract, download_file, extract_archive, file_md5
from .formats import read_cifar, read_stl10
from .imagefolder import IMAGE_EXTENSIONS, read_imagefolder
from .loading import load_dataset
from .splits import train_val_split

__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "DatasetError",
    "DatasetInfo",
    "ImageDataset",
    "dataset_info",
    "download_and_extract",
    "download_file",
    "extract_archive",
    "file_md5",
    "load_dataset",
    "load_digits",
    "load_mnist5k",
    "read_cifar",
    "read_imagefolder",
    "read_stl10",
    "resize_images",
    "train_val_split",
]
