"""Encoders by name: :data:`MODELS` and :func:`build_model`."""

from __future__ import annotations

from .._validation import check_positive_int
from .base import Encoder
from .convnet import CONVNET_MIN_IMAGE_SIZE, ConvNet
from .resnet import RESNET18_MIN_IMAGE_SIZE, ResNet18
from .smallalexnet import SMALLALEXNET_IMAGE_SIZE, SmallAlexNet

__all__ = ["MODELS", "build_model"]

MODELS: tuple[str, ...] = ("smallalexnet", "resnet18", "convnet")
"""Names accepted by :func:`build_model`."""


def build_model(name: str, dim: int = 128, in_channels: int = 3, image_size: int = 64) -> Encoder:
    """Build an encoder by name.

    Args:
        name: one of :data:`MODELS`: ``"smallalexnet"`` (the paper's STL-10
            encoder, 64x64 input), ``"resnet18"`` (CIFAR stem, side >= 8) or
            ``"convnet"`` (small and fast, for 28x28 / 8x8 digits).
        dim: embedding dimension.
        in_channels: channels of the input images.
        image_size: side of the (square) input images.

    Returns:
        A freshly initialised :class:`Encoder`.

    Raises:
        ValueError: for an unknown name, a non-positive ``dim`` or
            ``in_channels``, or an ``image_size`` the model cannot take.

    Examples:
        >>> import torch
        >>> model = build_model("convnet", dim=64, in_channels=1, image_size=28)
        >>> model(torch.rand(4, 1, 28, 28)).shape
        torch.Size([4, 64])
        >>> build_model("smallalexnet", image_size=32)
        Traceback (most recent call last):
        ...
        ValueError: smallalexnet needs image_size=64 (its fc6 expects a 7x7 conv5 map), got 32
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}")
    dim = check_positive_int(dim, "dim")
    in_channels = check_positive_int(in_channels, "in_channels")
    image_size = check_positive_int(image_size, "image_size")
    if name == "smallalexnet":
        if image_size != SMALLALEXNET_IMAGE_SIZE:
            raise ValueError(
                f"smallalexnet needs image_size={SMALLALEXNET_IMAGE_SIZE} (its fc6 expects a 7x7 conv5 map), "
                f"got {image_size}"
            )
        return SmallAlexNet(dim=dim, in_channels=in_channels)
    if name == "resnet18":
        if image_size < RESNET18_MIN_IMAGE_SIZE:
            raise ValueError(f"resnet18 needs image_size >= {RESNET18_MIN_IMAGE_SIZE}, got {image_size}")
        return ResNet18(dim=dim, in_channels=in_channels)
    if image_size < CONVNET_MIN_IMAGE_SIZE:
        raise ValueError(f"convnet needs image_size >= {CONVNET_MIN_IMAGE_SIZE}, got {image_size}")
    return ConvNet(dim=dim, in_channels=in_channels, image_size=image_size)
