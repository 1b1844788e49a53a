"""BatchNorm statistics for evaluation, recomputed with the current weights on clean images.

During training, BatchNorm's running statistics are an exponential average
(momentum 0.1) over the last ten to twenty *augmented* training batches. In eval
mode an encoder then normalises clean evaluation images with statistics of
another input distribution, and of weights a few steps old. On mnist5k with the
``digits`` augmentation this made the output layer's held-out uniformity
L_uniform(t = 2) 0.6–0.8 less uniform than the same weights with statistics of
clean images (contrastive τ = 0.2, 10 epochs: −2.65 against −3.31), and it
jumped by up to 0.8 from one epoch to the next (−1.88, −2.39, −3.01, −2.65 over
epochs 7–10) while the recomputed value moved by at most 0.04 — noise as large
as the differences between objectives that the studies compare; see
``docs/training.md`` ("Held-out metrics and BatchNorm statistics").

:func:`recomputed_batchnorm` replaces the running statistics, for the duration
of a ``with`` block, by statistics of every BatchNorm layer's inputs over a set
of images passed through the encoder with per-batch normalisation, as training
passes them: the exact mean, and the batches' size-weighted average unbiased
variance ("precise BN", Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm").
The encoder's own statistics are restored afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .._validation import check_positive_int
from ..errors import OptionError
from .features import _to_input, check_encoder_device, frozen

__all__ = ["BATCHNORM_MODES", "batchnorm_layers", "check_batchnorm_mode", "recomputed_batchnorm"]

BATCHNORM_MODES: tuple[str, ...] = ("recompute", "running")
"""``"recompute"``: statistics recomputed on the evaluation's training images; ``"running"``: the encoder's own."""

#: Images the statistics are recomputed on, at most (a seeded subset of larger sets): enough for exact-looking
#: statistics (the standard error of a channel mean is below 1 % of its standard deviation) at bounded cost.
MAX_IMAGES = 10_000


def check_batchnorm_mode(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`BATCHNORM_MODES`, else raise :class:`~aligniform.errors.OptionError`.

    Examples:
        >>> check_batchnorm_mode("recompute")
        'recompute'
    """
    if mode not in BATCHNORM_MODES:
        raise OptionError(f"`batchnorm` must be one of {', '.join(BATCHNORM_MODES)}, got {mode!r}")
    return mode


def batchnorm_layers(encoder: nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers of ``encoder`` that keep running statistics (including SyncBatchNorm)."""
    return [
        module
        for module in encoder.modules()
        if isinstance(module, _BatchNorm) and module.track_running_stats and module.running_mean is not None
    ]


@contextmanager
def recomputed_batchnorm(
    encoder: nn.Module,
    images: torch.Tensor,
    transform: nn.Module | None,
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    max_images: int | None = MAX_IMAGES,
) -> Iterator[nn.Module]:
    """Within the block, every BatchNorm of ``encoder`` holds the statistics of its inputs over ``images``.

    The images are transformed and passed through the encoder ``batch_size``
    at a time, each BatchNorm layer normalising with the batch's own
    statistics (as in training) while they are averaged over the batches,
    weighted by size: the mean of a layer's inputs over all images, exactly,
    and the average unbiased within-batch variance (with one batch, the
    unbiased variance over all images). Those are the running statistics used
    in eval mode inside the block. Afterwards the encoder gets its own
    statistics and every submodule its own train/eval mode back. Other layers
    (e.g. dropout) stay in eval mode during the pass, no gradient is
    computed and no random number is drawn. An encoder without BatchNorm is
    left as it is.

    Args:
        encoder: any module, already on ``device``.
        images: ``(N, C, H, W)`` uint8 (or float in ``[0, 1]``) images, N >= 2.
        transform: maps a raw image batch to the encoder's input (``None``:
            only cast to float, uint8 scaled to ``[0, 1]``).
        batch_size: images per forward pass; the batches are made near-equal
            in size (every one holds at least 2 images).
        device: where the transform and the encoder run.
        max_images: use a fixed (seed 0) random subset of this many images of
            a larger set; ``None``: all of them.

    Yields:
        ``encoder`` itself, with the recomputed statistics.

    Raises:
        ValueError: fewer than 2 images, a non-positive ``batch_size`` or
            ``max_images``, or the encoder is not on ``device``.

    Examples:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3))
        >>> images = torch.rand(10, 1, 2, 2)
        >>> with recomputed_batchnorm(net, images, None, batch_size=4):
        ...     inside = net.eval()(images)
        >>> bool(inside.mean(0).abs().max() < 1e-5)  # exact statistics: zero mean on these very images
        True
        >>> float(net[2].running_mean.abs().max())  # the encoder's own statistics are back
        0.0
    """
    layers = batchnorm_layers(encoder)
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a (N, C, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    if len(images) < 2:
        raise ValueError(f"recomputing BatchNorm statistics needs at least 2 images, got {len(images)}")
    batch_size = check_positive_int(batch_size, "batch_size")
    if not layers:
        yield encoder
        return
    device = check_encoder_device(encoder, device)
    if max_images is not None and len(images) > check_positive_int(max_images, "max_images"):
        keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:max_images]
        images = images[keep.sort().values]
    saved = [tuple(buffer.clone() for buffer in _statistics(layer)) for layer in layers]
    averages = _accumulate(encoder, layers, images, transform, batch_size, device)
    try:
        for layer, average in zip(layers, averages, strict=True):
            if average.count:  # a layer that saw no input (a branch the forward pass skips) keeps its statistics
                for buffer, value in zip(_statistics(layer), (average.mean, average.var), strict=True):
                    buffer.copy_(value)
        yield encoder
    finally:
        for layer, values in zip(layers, saved, strict=True):
            for buffer, value in zip(_statistics(layer), values, strict=True):
                buffer.copy_(value)


def _statistics(layer: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's running mean and variance buffers (present: :func:`batchnorm_layers` keeps only such layers)."""
    assert layer.running_mean is not None and layer.running_var is not None
    return layer.running_mean, layer.running_var


@dataclass
class _Average:
    """Images seen by one layer, and the size-weighted averages of its batches' means and unbiased variances."""

    count: int
    mean: torch.Tensor
    var: torch.Tensor


def _accumulate(
    encoder: nn.Module,
    layers: list[_BatchNorm],
    images: torch.Tensor,
    transform: nn.Module | None,
    batch_size: int,
    device: torch.device,
) -> list[_Average]:
    """One pass with per-batch normalisation; every layer's mean, and its size-weighted unbiased batch variance."""
    averages = [_Average(0, *(torch.zeros_like(buffer) for buffer in _statistics(layer))) for layer in layers]
    stand_ins = {id(layer): _BatchStatistics(layer, average) for layer, average in zip(layers, averages, strict=True)}
    chunks = max(1, min(math.ceil(len(images) / batch_size), len(images) // 2))
    # The modes are recorded before the swap, so frozen() gives every original module its own mode back.
    with frozen(encoder), torch.no_grad(), _standing_in(encoder, stand_ins):
        forward = stand_ins.get(id(encoder), encoder)  # an encoder that is one BatchNorm layer
        for batch in torch.tensor_split(images, chunks):
            forward(_to_input(batch.to(device), transform))
    return averages


class _BatchStatistics(nn.Module):
    """Stands in for a BatchNorm layer during the pass: training-mode normalisation, statistics into ``average``.

    The layer itself is not called: in eval mode it would normalise every batch for nothing (a forward hook that
    replaced its output made the pass ~12 % slower on the convnet), and in training mode a SyncBatchNorm would wait for
    the other processes, which do not evaluate. With momentum n_k / (n_1 + ... + n_k) the buffers become the
    size-weighted average of the batches' means (the exact mean) and unbiased variances.
    """

    def __init__(self, layer: _BatchNorm, average: _Average) -> None:
        super().__init__()
        self.layer = [layer]  # a list: not registered as a submodule, so modules() never sees it twice
        self.average = average

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (layer,), average = self.layer, self.average
        average.count += len(x)
        momentum = len(x) / average.count
        return F.batch_norm(x, average.mean, average.var, layer.weight, layer.bias, True, momentum, layer.eps)


@contextmanager
def _standing_in(encoder: nn.Module, stand_ins: dict[int, nn.Module]) -> Iterator[None]:
    """Within the block, every submodule slot of ``encoder`` holding a layer of ``stand_ins`` holds its stand-in."""
    swapped = [
        (parent, name, child)
        for parent in list(encoder.modules())
        for name, child in parent._modules.items()
        if child is not None and id(child) in stand_ins
    ]
    try:
        for parent, name, child in swapped:
            setattr(parent, name, stand_ins[id(child)])  # nn.Module's setattr replaces the registered submodule
        yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
