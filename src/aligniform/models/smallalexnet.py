"""SmallAlexNet: the STL-10 encoder of Wang & Isola (2020), App. B.1."""

from __future__ import annotations

import torch
from torch import nn

from aligniform.models.base import Encoder, L2Normalize

__all__ = ["SMALLALEXNET_IMAGE_SIZE", "SmallAlexNet"]

SMALLALEXNET_IMAGE_SIZE = 64
"""The only input side SmallAlexNet accepts (its fc6 expects a 7x7 map)."""

# (out_channels, max-pool after the block?) for conv1..conv5.
_CONV_PLAN: tuple[tuple[int, bool], ...] = ((96, True), (192, True), (384, False), (384, False), (192, True))
_CONV5_SIDE = 7  # 64 -> 31 -> 15 -> 7 through the three MaxPool(3, stride 2)
_FC_WIDTH = 4096
_INIT_STD = 0.02


def _conv_block(in_channels: int, out_channels: int, pool: bool) -> nn.Sequential:
    # No conv bias: the BatchNorm that follows has its own shift (as in the
    # authors' code).
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
    return nn.Sequential(*layers)


def _fc_block(in_features: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_features, out_features, bias=False),
        nn.BatchNorm1d(out_features),
        nn.ReLU(inplace=True),
    )


class SmallAlexNet(Encoder):
    """AlexNet-style encoder for 64x64 images (Wang & Isola 2020, STL-10).

    Five 3x3 conv layers (96, 192, 384, 384, 192 channels), each followed by
    BatchNorm and ReLU, with MaxPool(3, stride 2) after conv1, conv2 and conv5
    (64 -> 31 -> 15 -> 7); then fc6 (192*7*7 -> 4096) and fc7 (4096 -> 4096),
    each with BatchNorm and ReLU; fc8 (4096 -> dim) and L2 normalisation.
    Conv/linear weights are drawn from N(0, 0.02); the fc8 bias and BatchNorm
    shifts start at 0, BatchNorm scales at 1 (the authors' initialisation).

    Layers: ``"backbone"`` (flattened pooled conv5, 9408-d), ``"fc6"``,
    ``"fc7"`` (4096-d each) and ``"output"``. The paper evaluates ``"fc7"``,
    the default evaluation layer.

    Args:
        dim: embedding dimension.
        in_channels: channels of the input images.

    Examples:
        >>> model = SmallAlexNet(dim=128)
        >>> model.eval()(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 128])
        >>> model.default_eval_layer
        'fc7'
    """

    def __init__(self, dim: int = 128, in_channels: int = 3) -> None:
        conv_blocks: list[nn.Module] = []
        channels = in_channels
        for out_channels, pool in _CONV_PLAN:
            conv_blocks.append(_conv_block(channels, out_channels, pool))
            channels = out_channels
        backbone_width = channels * _CONV5_SIDE * _CONV5_SIDE
        stages = nn.ModuleDict(
            {
                "backbone": nn.Sequential(*conv_blocks, nn.Flatten()),
                "fc6": _fc_block(backbone_width, _FC_WIDTH),
                "fc7": _fc_block(_FC_WIDTH, _FC_WIDTH),
                "output": nn.Sequential(nn.Linear(_FC_WIDTH, dim), L2Normalize()),
            }
        )
        super().__init__(
            stages,
            dim=dim,
            in_channels=in_channels,
            default_eval_layer="fc7",
            feature_dims={"backbone": backbone_width, "fc6": _FC_WIDTH, "fc7": _FC_WIDTH, "output": dim},
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw the weights with the authors' initialisation."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(module.weight, mean=0.0, std=_INIT_STD)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _check_input(self, x: torch.Tensor) -> None:
        super()._check_input(x)
        if tuple(x.shape[-2:]) != (SMALLALEXNET_IMAGE_SIZE, SMALLALEXNET_IMAGE_SIZE):
            raise ValueError(
                f"SmallAlexNet takes {SMALLALEXNET_IMAGE_SIZE}x{SMALLALEXNET_IMAGE_SIZE} images, "
                f"got {x.shape[-2]}x{x.shape[-1]}"
            )
