"""A small MLP onto the hypersphere, for vector (not image) inputs such as the latent-class study's data."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLPEncoder(nn.Module):
    """Two hidden ReLU layers, then L2 normalisation onto S^{out_dim − 1}.

    Unlike the image encoders (:class:`aligniform.models.Encoder`) it has no
    named intermediate layers: it is the encoder of synthetic experiments.

    Args:
        in_dim: input dimension.
        hidden: width of both hidden layers.
        out_dim: dimension of the L2-normalised output.

    Examples:
        >>> encoder = MLPEncoder(8, hidden=16, out_dim=4)
        >>> encoder(torch.randn(3, 8)).norm(dim=1).allclose(torch.ones(3))
        True
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.layers(x), dim=1)
