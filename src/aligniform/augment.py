"""Batched image augmentation for contrastive learning.

Every pipeline here is an :class:`torch.nn.Module` that takes a whole batch
``(B, C, H, W)`` -- ``uint8`` in ``0..255`` or floating point in ``[0, 1]`` --
on any device and returns a normalised ``float32`` batch
``(B, C, image_size, image_size)``. The random pipelines are built from
kornia's batched augmentations, so one call draws different parameters for
every image without a Python loop over the batch, and it runs on the GPU when
the images are there.

Randomness: kornia draws its parameters from torch's *global CPU* generator
(even for CUDA inputs, the parameters are sampled on the CPU and then moved),
so ``torch.manual_seed`` makes a run reproducible and saving/restoring
``torch.get_rng_state()`` is enough to resume one exactly.

Pipelines (see ``docs/models.md``):

* ``"paper"`` -- Wang & Isola (2020), STL-10: RandomResizedCrop(scale 0.08-1),
  horizontal flip, ColorJitter(0.4, 0.4, 0.4, 0.4) with p = 0.8,
  RandomGrayscale(p = 0.2), normalisation. RGB only.
* ``"digits"`` -- for grayscale handwritten digits (MNIST, sklearn digits): a
  milder, nearly isotropic RandomResizedCrop plus a small rotation and
  translation; no flips and no colour operations.
* ``"none"`` -- conversion to float and normalisation only (with a
  shorter-side resize and centre crop when the input is not already
  ``image_size``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._extras import requires_extra
from ._validation import check_positive_int

with requires_extra("train"):
    import kornia.augmentation as K

__all__ = [
    "AUGMENTATIONS",
    "DIGITS_CROP_RATIO",
    "DIGITS_CROP_SCALE",
    "DIGITS_ROTATION_DEGREES",
    "DIGITS_TRANSLATE_FRACTION",
    "PAPER_COLOR_JITTER",
    "PAPER_COLOR_JITTER_P",
    "PAPER_CROP_SCALE",
    "PAPER_GRAYSCALE_P",
    "Augmentation",
    "CenterCropResize",
    "Normalize",
    "ToFloat",
    "build_augmentation",
    "build_eval_transform",
    "two_views",
]

AUGMENTATIONS: tuple[str, ...] = ("paper", "digits", "none")
"""Valid ``kind`` values for :func:`build_augmentation`."""

# The paper's STL-10 values (Wang & Isola 2020, App. B.1).
PAPER_CROP_SCALE: tuple[float, float] = (0.08, 1.0)
PAPER_COLOR_JITTER: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.4)
PAPER_COLOR_JITTER_P: float = 0.8
PAPER_GRAYSCALE_P: float = 0.2

# Digits: a digit occupies most of its frame (MNIST centres a 20x20 digit in
# 28x28), so the paper's 8 % crops would usually show a meaningless stroke
# fragment. Keeping >= 35 % of the area still shows most of the digit while
# the crop-and-rescale changes its position, size and stroke width enough to
# make the two views hard to match pixel by pixel.
DIGITS_CROP_SCALE: tuple[float, float] = (0.35, 1.0)
# Nearly isotropic: strong aspect changes turn a 0 into a 1-like bar or a 1
# into a blob.
DIGITS_CROP_RATIO: tuple[float, float] = (0.8, 1.25)
# Handwriting is slanted both ways by a few degrees; beyond ~20 degrees a 6 and
# a 9, or a 1 and a 7, start to look alike.
DIGITS_ROTATION_DEGREES: float = 12.0
# A shift of up to 1/10 of the side (about 3 px on MNIST) moves the digit
# without pushing its strokes out of the frame.
DIGITS_TRANSLATE_FRACTION: float = 0.1


class ToFloat(nn.Module):
    """Turn an image batch into ``float32`` in ``[0, 1]``.

    ``uint8`` input is divided by 255; floating-point input is taken to be in
    ``[0, 1]`` already and only cast.

    Examples:
        >>> images = torch.full((2, 1, 4, 4), 255, dtype=torch.uint8)
        >>> ToFloat()(images).max().item()
        1.0
    """

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_batch(images)
        if images.dtype == torch.uint8:
            return images.to(torch.float32) / 255.0
        if not images.is_floating_point():
            raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")
        return images.to(torch.float32)


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std``.

    ``mean`` and ``std`` are moved to the batch's device on the fly, so the
    module works whether or not it was ``.to(device)``-ed along with the model.

    Args:
        mean: one value per channel (or a single value for all channels).
        std: one positive value per channel (or a single value).

    Examples:
        >>> norm = Normalize([0.5], [0.25])
        >>> norm(torch.ones(1, 1, 2, 2)).flatten().tolist()
        [2.0, 2.0, 2.0, 2.0]
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean_t.numel() == 0 or mean_t.shape != std_t.shape:
            raise ValueError(
                f"mean and std must be non-empty and of equal length, got {mean_t.numel()} and {std_t.numel()}"
            )
        if not bool((std_t > 0).all()):
            raise ValueError(f"std must be positive, got {std_t.tolist()}")
        # Non-persistent: normalisation constants are configuration, not state.
        self.register_buffer("mean", mean_t, persistent=False)
        self.register_buffer("std", std_t, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        channels = images.shape[1]
        if self.mean.numel() not in (1, channels):
            raise ValueError(
                f"normalisation has {self.mean.numel()} channel statistics but the images have {channels} channels"
            )
        mean = self.mean.to(device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        std = self.std.to(device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        return (images - mean) / std

    def extra_repr(self) -> str:
        return f"mean={self.mean.tolist()}, std={self.std.tolist()}"


class CenterCropResize(nn.Module):
    """Deterministic shorter-side resize followed by a square centre crop.

    The resize is bilinear with antialiasing (as torchvision's ``Resize`` on
    tensors) and is skipped when the shorter side already equals ``resize``,
    so pixel values pass through unchanged in that case. The crop offset
    follows torchvision's ``CenterCrop``: ``round((side - size) / 2)``.

    Args:
        size: side of the square output.
        resize: target length of the shorter side before cropping; must be at
            least ``size``.

    Examples:
        >>> images = torch.rand(2, 3, 10, 12)
        >>> CenterCropResize(8, resize=10)(images).shape
        torch.Size([2, 3, 8, 8])
    """

    def __init__(self, size: int, resize: int) -> None:
        super().__init__()
        size = check_positive_int(size, "image_size")
        resize = check_positive_int(resize, "resize")
        if resize < size:
            raise ValueError(f"resize ({resize}) must be >= image_size ({size}) so that the centre crop fits")
        self.size = size
        self.resize = resize

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        short = min(height, width)
        if short != self.resize:
            # Same rule as torchvision: the shorter side becomes `resize`,
            # the longer one keeps the aspect ratio (truncated).
            if height <= width:
                new_size = (self.resize, int(self.resize * width / height))
            else:
                new_size = (int(self.resize * height / width), self.resize)
            images = F.interpolate(images, size=new_size, mode="bilinear", align_corners=False, antialias=True)
            height, width = new_size
        top = int(round((height - self.size) / 2.0))
        left = int(round((width - self.size) / 2.0))
        return images[..., top : top + self.size, left : left + self.size]

    def extra_repr(self) -> str:
        return f"size={self.size}, resize={self.resize}"


class _RequireChannels(nn.Module):
    """Reject batches whose channel count a pipeline cannot handle."""

    def __init__(self, channels: int, kind: str, hint: str) -> None:
        super().__init__()
        self.channels = channels
        self.kind = kind
        self.hint = hint

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] != self.channels:
            raise ValueError(
                f"the {self.kind!r} augmentation needs {self.channels}-channel images, "
                f"got {images.shape[1]} channel(s); {self.hint}"
            )
        return images


class Augmentation(nn.Module):
    """A named augmentation pipeline: a sequence of batched steps.

    Built by :func:`build_augmentation` and :func:`build_eval_transform`;
    calling it maps ``(B, C, H, W)`` uint8 or float images to normalised
    ``float32`` ``(B, C, image_size, image_size)`` images.

    Args:
        kind: the pipeline's name (``"paper"``, ``"digits"``, ``"none"`` or
            ``"eval"``).
        image_size: side of the square output.
        steps: the modules applied in order.

    Attributes:
        kind: the pipeline's name.
        image_size: side of the square output.
        steps: the :class:`torch.nn.Sequential` of steps.

    Examples:
        >>> aug = build_augmentation("none", 8, mean=[0.5], std=[0.5])
        >>> isinstance(aug, Augmentation), aug.kind
        (True, 'none')
    """

    def __init__(self, kind: str, image_size: int, steps: Sequence[nn.Module]) -> None:
        super().__init__()
        self.kind = kind
        self.image_size = image_size
        self.steps = nn.Sequential(*steps)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.steps(images)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, image_size={self.image_size}"


def build_augmentation(
    kind: str,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> Augmentation:
    """Build a random training augmentation.

    Args:
        kind: ``"paper"`` (Wang & Isola's STL-10 pipeline, RGB only),
            ``"digits"`` (grayscale digits: mild crops, small rotations and
            shifts, no flips) or ``"none"`` (float conversion and
            normalisation only).
        image_size: side of the square output.
        mean: per-channel normalisation mean (values in ``[0, 1]`` units).
        std: per-channel normalisation standard deviation.

    Returns:
        A module mapping ``(B, C, H, W)`` uint8/float images to normalised
        ``float32`` ``(B, C, image_size, image_size)`` images. Each call draws
        fresh parameters for every image from torch's global RNG.

    Raises:
        ValueError: if ``kind`` is unknown, ``image_size`` is not a positive
            integer, or mean/std are malformed. The ``"paper"`` module raises
            ``ValueError`` when called on images that are not 3-channel.

    Examples:
        >>> aug = build_augmentation("digits", 28, mean=[0.1307], std=[0.3081])
        >>> images = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
        >>> aug(images).shape
        torch.Size([4, 1, 28, 28])
    """
    check_positive_int(image_size, "image_size")
    size = (image_size, image_size)
    normalize = Normalize(mean, std)
    if kind == "paper":
        steps: list[nn.Module] = [
            ToFloat(),
            _RequireChannels(3, "paper", 'use kind="digits" (or "none") for grayscale images'),
            # "resample" crops the whole batch with one grid_sample instead of
            # kornia's default per-image slicing loop: batched, and GPU friendly.
            K.RandomResizedCrop(size, scale=PAPER_CROP_SCALE, cropping_mode="resample"),
            K.RandomHorizontalFlip(p=0.5),
            # ColorJitter (not ColorJiggle) implements torchvision's formulas,
            # which the paper used.
            K.ColorJitter(*PAPER_COLOR_JITTER, p=PAPER_COLOR_JITTER_P),
            K.RandomGrayscale(p=PAPER_GRAYSCALE_P),
            normalize,
        ]
    elif kind == "digits":
        steps = [
            ToFloat(),
            K.RandomResizedCrop(size, scale=DIGITS_CROP_SCALE, ratio=DIGITS_CROP_RATIO, cropping_mode="resample"),
            # Zero padding is the digits' own (black) background.
            K.RandomAffine(
                degrees=DIGITS_ROTATION_DEGREES,
                translate=(DIGITS_TRANSLATE_FRACTION, DIGITS_TRANSLATE_FRACTION),
                padding_mode="zeros",
                p=1.0,
            ),
            normalize,
        ]
    elif kind == "none":
        steps = [ToFloat(), CenterCropResize(image_size, resize=image_size), normalize]
    else:
        raise ValueError(f"unknown augmentation kind {kind!r}; valid kinds: {', '.join(AUGMENTATIONS)}")
    return Augmentation(kind, image_size, steps)


def build_eval_transform(
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    resize: int | None = None,
) -> Augmentation:
    """Build the deterministic evaluation transform.

    Resize the shorter side to ``resize``, take the centre ``image_size``
    square and normalise -- the paper's ``Resize(70)`` + ``CenterCrop(64)``
    for ``image_size=64``.

    Args:
        image_size: side of the square output.
        mean: per-channel normalisation mean.
        std: per-channel normalisation standard deviation.
        resize: shorter-side length before cropping; defaults to
            ``round(image_size * 70 / 64)``. Must be ``>= image_size``.

    Returns:
        A module mapping ``(B, C, H, W)`` uint8/float images to normalised
        ``float32`` ``(B, C, image_size, image_size)`` images; it uses no
        randomness.

    Raises:
        ValueError: if ``resize < image_size`` or sizes are not positive.

    Examples:
        >>> evaluate = build_eval_transform(64, mean=[0.5] * 3, std=[0.25] * 3)
        >>> evaluate(torch.rand(2, 3, 96, 96)).shape
        torch.Size([2, 3, 64, 64])
    """
    check_positive_int(image_size, "image_size")
    if resize is None:
        resize = round(image_size * 70 / 64)
    steps = [ToFloat(), CenterCropResize(image_size, resize=resize), Normalize(mean, std)]
    return Augmentation("eval", image_size, steps)


def two_views(augmentation: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent augmentations of the same batch (a positive pair per image).

    Args:
        augmentation: a random pipeline from :func:`build_augmentation`.
        images: ``(B, C, H, W)`` uint8 or float images.

    Returns:
        ``(view_a, view_b)``, each ``(B, C, image_size, image_size)``; row
        ``i`` of both views comes from ``images[i]``, with parameters drawn
        independently for each view and each image.

    Examples:
        >>> aug = build_augmentation("digits", 28, mean=[0.1307], std=[0.3081])
        >>> view_a, view_b = two_views(aug, torch.rand(8, 1, 28, 28))
        >>> view_a.shape == view_b.shape, torch.equal(view_a, view_b)
        (True, False)
    """
    # Two separate calls: each draws its own parameters from the global RNG.
    return augmentation(images), augmentation(images)


def _check_batch(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected an image batch of shape (B, C, H, W), got {shape}")
