"""Feature extraction through a frozen encoder, batched, without gradients."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from .._validation import check_positive_int


@contextmanager
def frozen(encoder: nn.Module) -> Iterator[nn.Module]:
    """Put ``encoder`` in eval mode for the block, then restore every submodule's own mode.

    Restoring module by module (not just ``encoder.train(was_training)``)
    keeps deliberately mixed states intact, e.g. a model whose BatchNorm
    layers a caller froze while the rest trains.

    Examples:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).train()
        >>> with frozen(net):
        ...     net.training
        False
        >>> net.training
        True
    """
    modes = [(module, module.training) for module in encoder.modules()]
    encoder.eval()
    try:
        yield encoder
    finally:
        for module, training in modes:
            module.training = training


@contextmanager
def seeded_global_rng(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Seed torch's global RNG for the block and restore the caller's RNG state afterwards.

    Random augmentations (kornia) draw from the global generator. Forking it
    makes an evaluation reproducible and, above all, keeps it from shifting
    the random stream of a training run that evaluates every few epochs.
    """
    device = torch.device(device)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def encoder_device(encoder: nn.Module) -> torch.device | None:
    """The device of the encoder's first parameter or buffer (``None`` for a stateless module)."""
    for tensor in encoder.parameters():
        return tensor.device
    for tensor in encoder.buffers():
        return tensor.device
    return None


def check_encoder_device(encoder: nn.Module, device: torch.device | str) -> torch.device:
    """Raise unless the encoder lives on ``device`` (the batches are sent there)."""
    device = torch.device(device)
    where = encoder_device(encoder)
    if where is not None and (where.type != device.type or (device.index is not None and where != device)):
        raise ValueError(
            f"device is {device} but the encoder's parameters are on {where}; "
            f"move the encoder first (encoder.to({str(device)!r})) or pass device={str(where)!r}"
        )
    return device


def layer_features(encoder: nn.Module, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """One forward pass returning ``{layer: (N, D)}``; plain modules are supported for ``"output"`` only."""
    if hasattr(encoder, "forward_features"):
        return encoder.forward_features(images, list(layers))
    if list(layers) != ["output"]:
        raise ValueError(
            f"{type(encoder).__name__} has no forward_features(), so only layers=('output',) can be "
            f"extracted, got {tuple(layers)}"
        )
    return {"output": encoder(images).flatten(1)}


def check_layer_list(layers: Sequence[str] | str) -> list[str]:
    """Accept one name or a sequence; de-duplicate keeping order."""
    names = [layers] if isinstance(layers, str) else list(layers)
    names = list(dict.fromkeys(names))
    if not names or not all(isinstance(name, str) for name in names):
        raise ValueError(f"layers must be one or more layer names, got {layers!r}")
    return names


def extract_features(
    encoder: nn.Module,
    images: torch.Tensor,
    transform: nn.Module | None,
    layers: Sequence[str] = ("output",),
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """Features of ``images`` at the given layers of a frozen encoder.

    The encoder runs in eval mode (BatchNorm uses its running statistics)
    under ``torch.no_grad()``; the train/eval mode of every submodule is
    restored afterwards. Images are transformed and encoded ``batch_size`` at
    a time on ``device``; results are gathered as ``float32`` on the CPU.

    Args:
        encoder: an :class:`~aligniform.models.Encoder` (or any module; a
            module without ``forward_features`` supports ``layers=("output",)``
            only). It must already be on ``device``.
        images: ``(N, C, H, W)`` uint8 (or float in ``[0, 1]``) images on the CPU
            or on ``device``.
        transform: maps a raw image batch to the encoder's normalised input
            (e.g. :func:`aligniform.augment.build_eval_transform`); ``None``
            only casts to float (uint8 is scaled to ``[0, 1]``). A random
            augmentation gives features of augmented images.
        layers: layer names from ``encoder.layer_names``.
        batch_size: images per forward pass; it does not change the result.
        device: where the transform and the encoder run.

    Returns:
        ``{layer: (N, D) float32 CPU tensor}`` in the order of ``layers``.

    Raises:
        ValueError: if ``images`` is not a 4-D batch, ``batch_size`` is not a
            positive integer, a layer is unknown, or the encoder is not on
            ``device``.

    Examples:
        >>> from aligniform.models import build_model
        >>> from aligniform.augment import build_eval_transform
        >>> model = build_model("convnet", dim=16, in_channels=1, image_size=8)
        >>> transform = build_eval_transform(8, mean=[0.3], std=[0.4], resize=8)
        >>> images = torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8)
        >>> feats = extract_features(model, images, transform, ["backbone", "output"], batch_size=4)
        >>> feats["output"].shape
        torch.Size([10, 16])
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (N, C, H, W) tensor, got {shape}")
    batch_size = check_positive_int(batch_size, "batch_size")
    layers = check_layer_list(layers)
    device = check_encoder_device(encoder, device)
    batches: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    with frozen(encoder), torch.no_grad():
        for batch in images.split(batch_size):
            inputs = _to_input(batch.to(device), transform)
            for name, value in layer_features(encoder, inputs, layers).items():
                batches[name].append(value.float().cpu())
    return {name: _concatenate(parts, len(images)) for name, parts in batches.items()}


def _to_input(batch: torch.Tensor, transform: nn.Module | None) -> torch.Tensor:
    if transform is not None:
        return transform(batch)
    if batch.dtype == torch.uint8:
        return batch.float() / 255.0
    return batch.float()


def _concatenate(parts: list[torch.Tensor], n: int) -> torch.Tensor:
    if parts:
        return torch.cat(parts)
    return torch.empty(n, 0)
