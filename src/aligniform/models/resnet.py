"""ResNet-18 with the CIFAR stem, for small (e.g. 32x32) images."""

from __future__ import annotations

import torch
from torch import nn

from aligniform.models.base import Encoder, L2Normalize

__all__ = ["RESNET18_MIN_IMAGE_SIZE", "BasicBlock", "ResNet18"]

RESNET18_MIN_IMAGE_SIZE = 8
"""Smallest input side: the three stride-2 stages take 8 down to 1."""

_STAGE_WIDTHS = (64, 128, 256, 512)
_STAGE_STRIDES = (1, 2, 2, 2)
_BLOCKS_PER_STAGE = 2


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: stride of the first conv (2 halves the resolution).

    Examples:
        >>> block = BasicBlock(64, 128, stride=2)
        >>> block(torch.rand(2, 64, 32, 32)).shape
        torch.Size([2, 128, 16, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet18(Encoder):
    """ResNet-18 encoder with the CIFAR stem.

    The stem is a single 3x3 stride-1 conv (64 channels) with BN and ReLU and
    no max-pool, so 32x32 inputs keep enough resolution; then four stages of
    two :class:`BasicBlock` each (64, 128, 256, 512 channels, strides 1, 2,
    2, 2), global average pooling, a linear head to ``dim`` and L2
    normalisation. Works for any input side >= 8.

    Layers: ``"backbone"`` (512-d pooled features, the default evaluation
    layer) and ``"output"``.

    Args:
        dim: embedding dimension.
        in_channels: channels of the input images.

    Examples:
        >>> model = ResNet18(dim=64)
        >>> model.eval()(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 64])
    """

    def __init__(self, dim: int = 128, in_channels: int = 3) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, _STAGE_WIDTHS[0], 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(_STAGE_WIDTHS[0]),
            nn.ReLU(inplace=True),
        ]
        channels = _STAGE_WIDTHS[0]
        for width, stride in zip(_STAGE_WIDTHS, _STAGE_STRIDES):
            for block_index in range(_BLOCKS_PER_STAGE):
                layers.append(BasicBlock(channels, width, stride if block_index == 0 else 1))
                channels = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        stages = nn.ModuleDict(
            {
                "backbone": nn.Sequential(*layers),
                "output": nn.Sequential(nn.Linear(channels, dim), L2Normalize()),
            }
        )
        super().__init__(
            stages,
            dim=dim,
            in_channels=in_channels,
            default_eval_layer="backbone",
            feature_dims={"backbone": channels, "output": dim},
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal conv weights (fan-out), BatchNorm scale 1 / shift 0; PyTorch's default for the head."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                module.reset_parameters()

    def _check_input(self, x: torch.Tensor) -> None:
        super()._check_input(x)
        if min(x.shape[-2:]) < RESNET18_MIN_IMAGE_SIZE:
            raise ValueError(
                f"ResNet18 needs images of side >= {RESNET18_MIN_IMAGE_SIZE}, got {x.shape[-2]}x{x.shape[-1]}"
            )
