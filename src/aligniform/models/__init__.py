"""Encoders onto the unit hypersphere.

Every encoder is an :class:`Encoder`: ``forward(x)`` returns L2-normalised
``(N, dim)`` embeddings and ``forward_features(x, layers)`` returns the
flattened features of named intermediate layers (``layer_names``), with
``default_eval_layer`` naming the one downstream evaluation should use.

=================  ==================  ===========================================  ===================
name               input side          layers                                       default eval layer
=================  ==================  ===========================================  ===================
``smallalexnet``   64 only             backbone (9408), fc6, fc7 (4096), output     fc7
``resnet18``       >= 8 (e.g. 32)      backbone (512), output                       backbone
``convnet``        >= 4 (e.g. 28, 8)   backbone (864), hidden (256), output         backbone
=================  ==================  ===========================================  ===================
"""

from __future__ import annotations

from aligniform.models.base import Encoder, L2Normalize
from aligniform.models.convnet import CONVNET_MIN_IMAGE_SIZE, ConvNet
from aligniform.models.resnet import RESNET18_MIN_IMAGE_SIZE, ResNet18
from aligniform.models.smallalexnet import SMALLALEXNET_IMAGE_SIZE, SmallAlexNet

__all__ = ["MODELS", "ConvNet", "Encoder", "L2Normalize", "ResNet18", "SmallAlexNet", "build_model"]

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
    for value, label in ((dim, "dim"), (in_channels, "in_channels"), (image_size, "image_size")):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
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
