"""The in-memory image dataset container and the per-dataset metadata registry.

Everything here is free of file-format knowledge so that the readers in
:mod:`aligniform.data.formats` and :mod:`aligniform.data.imagefolder` can
import it without creating import cycles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import check_positive_int

IndexLike = Sequence[int] | np.ndarray | torch.Tensor | slice


class DatasetError(ValueError):
    """A dataset is missing, corrupt, or was asked for with an invalid split or name.

    Subclasses :class:`ValueError` so callers that already catch bad-argument
    errors also catch this one. The message always says what was looked for,
    where, and how to fix it.
    """


@dataclass
class ImageDataset:
    """Images and labels held in memory as tensors.

    Attributes:
        images: ``uint8`` tensor of shape ``(N, C, H, W)``, contiguous, on the CPU.
        labels: ``int64`` tensor of shape ``(N,)``; ``-1`` marks unlabelled
            samples (the STL-10 ``unlabeled`` split).
        classes: Class names; label ``k`` means ``classes[k]``.
        name: Registry name of the dataset the samples came from (for example
            ``"cifar10"``), so ``dataset_info(ds.name)`` gives its metadata.

    Examples:
        >>> ds = ImageDataset(torch.zeros(4, 1, 8, 8, dtype=torch.uint8),
        ...                   torch.tensor([0, 1, 0, 1]), ["a", "b"], "toy")
        >>> len(ds), ds.num_classes, ds.channels, ds.image_size
        (4, 2, 1, 8)
        >>> ds.subset([1, 3]).labels.tolist()
        [1, 1]
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8:
            raise ValueError(
                f"images must be a torch.uint8 tensor, got {getattr(self.images, 'dtype', type(self.images).__name__)}"
            )
        if self.images.dim() != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(self.images.shape)}")
        labels = torch.as_tensor(self.labels)
        if labels.dim() != 1 or labels.shape[0] != self.images.shape[0]:
            raise ValueError(
                f"labels must have shape ({self.images.shape[0]},) to match images, got {tuple(labels.shape)}"
            )
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f"labels must be integers, got {labels.dtype}")
        self.classes = [str(c) for c in self.classes]
        if labels.numel() and (int(labels.min()) < -1 or int(labels.max()) >= len(self.classes)):
            raise ValueError(
                f"labels must lie in [-1, {len(self.classes) - 1}] for "
                f"{len(self.classes)} classes, got range "
                f"[{int(labels.min())}, {int(labels.max())}]"
            )
        # Downstream code indexes these tensors in hot loops; a one-off copy here
        # guarantees the documented layout whatever the caller passed in.
        self.images = self.images.cpu().contiguous()
        self.labels = labels.to(device="cpu", dtype=torch.int64).contiguous()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """Return ``(image, label)`` for one sample; the image is ``(C, H, W)`` uint8."""
        return self.images[index], int(self.labels[index])

    def __repr__(self) -> str:
        # The dataclass default would print every pixel.
        return (
            f"ImageDataset(name={self.name!r}, n={len(self)}, channels={self.channels}, "
            f"size={tuple(self.images.shape[2:])}, classes={self.num_classes})"
        )

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(classes)``), even if some are absent from this subset."""
        return len(self.classes)

    @property
    def channels(self) -> int:
        """Number of image channels ``C``."""
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        """Image height ``H`` (images of all built-in datasets are square)."""
        return int(self.images.shape[2])

    def subset(self, indices: IndexLike) -> ImageDataset:
        """Return a new dataset holding only the selected samples.

        Args:
            indices: Integer indices (list, NumPy array or tensor), a boolean
                mask of length ``len(self)``, or a slice.

        Returns:
            An :class:`ImageDataset` with copied tensors, the same ``classes``
            and ``name``.

        Examples:
            >>> ds = ImageDataset(torch.arange(3, dtype=torch.uint8).view(3, 1, 1, 1),
            ...                   torch.tensor([0, 1, 2]), ["a", "b", "c"], "toy")
            >>> ds.subset(np.array([2, 0])).images.flatten().tolist()
            [2, 0]
        """
        if isinstance(indices, slice):
            index = torch.arange(len(self))[indices]
        else:
            if not isinstance(indices, torch.Tensor):
                indices = np.asarray(indices)
            index = torch.as_tensor(indices)
            if index.dtype == torch.bool:
                if index.shape != (len(self),):
                    raise ValueError(
                        f"a boolean mask for subset() must have shape ({len(self)},), got {tuple(index.shape)}"
                    )
                index = index.nonzero().flatten()
            elif index.numel() == 0:
                index = index.to(torch.int64)
            elif index.dtype.is_floating_point:
                raise ValueError(f"subset() indices must be integers, got {index.dtype}")
            index = index.to(torch.int64).flatten()
        return ImageDataset(
            images=self.images[index].contiguous(),
            labels=self.labels[index].clone(),
            classes=list(self.classes),
            name=self.name,
        )


@dataclass(frozen=True)
class DatasetInfo:
    """Static metadata of a dataset in the registry.

    Attributes:
        name: Registry name, e.g. ``"cifar10"``.
        channels: Image channels (1 for the digit datasets, 3 otherwise).
        image_size: Native height/width in pixels; ``0`` when it depends on the
            files (``imagefolder``).
        num_classes: Number of classes; ``0`` when it depends on the files.
        mean: Per-channel mean of images scaled to ``[0, 1]``.
        std: Per-channel standard deviation of images scaled to ``[0, 1]``.
        train_split: Split to train the encoder on.
        test_split: Split to evaluate on.
        augmentation: Name of the augmentation recipe: ``"digits"`` for small
            grey-scale digits, ``"paper"`` for the colour-image recipe of
            Wang & Isola (2020).
        url: Official download address, or ``None`` if it cannot be downloaded.
        md5: MD5 hex digest of the archive at ``url``.
        archive: File name of the archive at ``url``.
        folder: Name of the folder the archive extracts to.
        splits: Split names accepted by :func:`~aligniform.data.load_dataset`
            (empty when they depend on the files).
    """

    name: str
    channels: int
    image_size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_split: str
    test_split: str
    augmentation: str
    url: str | None = None
    md5: str | None = None
    archive: str | None = None
    folder: str | None = None
    splits: tuple[str, ...] = ()


# Means/stds: mnist5k and digits were computed over all their images (after the
# 0..16 -> 0..255 rescaling for digits); the CIFAR values are the usual
# training-set statistics; STL-10 uses the statistics of the unlabeled split,
# which dominates its "train+unlabeled" training split. imagefolder falls back
# to the ImageNet statistics, the usual choice for unknown natural images.
DATASETS: dict[str, DatasetInfo] = {
    "mnist5k": DatasetInfo(
        name="mnist5k",
        channels=1,
        image_size=28,
        num_classes=10,
        mean=(0.1313,),
        std=(0.3086,),
        train_split="train",
        test_split="test",
        augmentation="digits",
        splits=("train", "test", "all"),
    ),
    "digits": DatasetInfo(
        name="digits",
        channels=1,
        image_size=8,
        num_classes=10,
        mean=(0.3053,),
        std=(0.3759,),
        train_split="train",
        test_split="test",
        augmentation="digits",
        splits=("train", "test", "all"),
    ),
    "cifar10": DatasetInfo(
        name="cifar10",
        channels=3,
        image_size=32,
        num_classes=10,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        train_split="train",
        test_split="test",
        augmentation="paper",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        archive="cifar-10-python.tar.gz",
        folder="cifar-10-batches-py",
        splits=("train", "test"),
    ),
    "cifar100": DatasetInfo(
        name="cifar100",
        channels=3,
        image_size=32,
        num_classes=100,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        train_split="train",
        test_split="test",
        augmentation="paper",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        archive="cifar-100-python.tar.gz",
        folder="cifar-100-python",
        splits=("train", "test"),
    ),
    "stl10": DatasetInfo(
        name="stl10",
        channels=3,
        image_size=96,
        num_classes=10,
        mean=(0.4408, 0.4279, 0.3867),
        std=(0.2682, 0.2610, 0.2686),
        train_split="train+unlabeled",
        test_split="test",
        augmentation="paper",
        url="http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
        md5="91f7769df0f17e558f3565bffb0c7dfb",
        archive="stl10_binary.tar.gz",
        folder="stl10_binary",
        splits=("train", "test", "unlabeled", "train+unlabeled"),
    ),
    "imagefolder": DatasetInfo(
        name="imagefolder",
        channels=3,
        image_size=0,
        num_classes=0,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        train_split="train",
        test_split="test",
        augmentation="paper",
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    """Return the metadata of a registered dataset.

    Args:
        name: Registry name (case-insensitive), e.g. ``"mnist5k"``.

    Returns:
        The :class:`DatasetInfo` for ``name``.

    Raises:
        DatasetError: ``name`` is not registered; the message lists valid names.

    Examples:
        >>> dataset_info("cifar10").image_size
        32
        >>> dataset_info("stl10").train_split
        'train+unlabeled'
    """
    key = str(name).strip().lower()
    if key not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; expected one of: {', '.join(sorted(DATASETS))}")
    return DATASETS[key]


def resize_images(images: torch.Tensor, size: int, chunk: int = 1024) -> torch.Tensor:
    """Resize a uint8 image batch to ``size x size`` with antialiased bilinear filtering.

    Works in chunks so that resizing e.g. the 105,000 STL-10 images never
    materialises the whole batch as floats.

    Args:
        images: ``uint8`` tensor ``(N, C, H, W)``.
        size: Target height and width in pixels (positive).
        chunk: Images converted to float at a time.

    Returns:
        A new contiguous ``uint8`` tensor ``(N, C, size, size)``; ``images``
        itself when it already has that size.

    Examples:
        >>> resize_images(torch.full((2, 3, 8, 8), 7, dtype=torch.uint8), 4).shape
        torch.Size([2, 3, 4, 4])
    """
    size = check_positive_int(size, "image_size")
    if images.dim() != 4 or images.dtype != torch.uint8:
        raise ValueError(f"images must be a uint8 tensor (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if images.shape[2] == size and images.shape[3] == size:
        return images
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        block = images[start : start + chunk].to(torch.float32)
        # antialias only matters when shrinking; bilinear with align_corners=False
        # matches PIL/torchvision resizing.
        block = F.interpolate(block, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[start : start + chunk] = block.round_().clamp_(0, 255).to(torch.uint8)
    return out
