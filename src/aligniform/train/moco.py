"""MoCo machinery (He et al. 2020), as in Wang & Isola's ImageNet-100 experiment.

A momentum copy of the encoder embeds the second view; its features are
pushed into a FIFO queue that the losses read through ``queue=``: extra
negatives for the contrastive loss, extra points for the uniformity loss
(squared distances to the queue, optionally plus intra-batch pairs).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class MomentumEncoder(nn.Module):
    """An exponential moving average of an encoder's weights (no gradient)."""

    def __init__(self, encoder: nn.Module, momentum: float):
        super().__init__()
        self.encoder = copy.deepcopy(encoder)
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(False)
        self.momentum = momentum

    @torch.no_grad()
    def update(self, encoder: nn.Module) -> None:
        """θ_k ← m θ_k + (1 − m) θ_q; buffers (BatchNorm statistics) are copied."""
        for key, query in zip(self.encoder.parameters(), encoder.parameters()):
            key.mul_(self.momentum).add_(query.detach(), alpha=1 - self.momentum)
        for key, query in zip(self.encoder.buffers(), encoder.buffers()):
            key.copy_(query)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class FeatureQueue(nn.Module):
    """A FIFO ring buffer of the last ``size`` key features, initialised uniformly on the sphere."""

    def __init__(self, size: int, dim: int, generator: torch.Generator | None = None):
        super().__init__()
        self.register_buffer("features", F.normalize(torch.randn(size, dim, generator=generator), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, keys: torch.Tensor) -> None:
        """Overwrite the oldest entries with ``keys`` (wrapping around the end)."""
        size = self.features.shape[0]
        keys = keys.detach().to(self.features.dtype)[-size:]
        positions = (self.pointer + torch.arange(keys.shape[0], device=keys.device)) % size
        self.features[positions] = keys
        self.pointer.fill_(int((self.pointer + keys.shape[0]) % size))
