"""Positive pairs from a frozen encoder: two seeded augmented views of every image of a split."""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_positive_int
from ..models.base import OUTPUT_LAYER
from .features import extract_features, seeded_global_rng


def embed_view_pairs(
    encoder: nn.Module,
    images: torch.Tensor,
    augmentation: nn.Module,
    *,
    seed: int,
    layer: str = OUTPUT_LAYER,
    repeats: int = 1,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of two independently augmented views of every image, through a frozen encoder.

    The views are drawn as a training run's final evaluation draws them: the
    whole split passes through ``augmentation`` and the encoder once for the
    first views, then once more for the second ones (``repeats`` times over).
    The augmentations draw from torch's global RNG (kornia), seeded with
    ``seed`` for the block and restored afterwards, so the pairs are
    reproducible and the caller's random stream (a training run's, say) is
    untouched. The encoder runs in eval mode without gradients, and every
    submodule gets its own train/eval mode back.

    Args:
        encoder: an :class:`~aligniform.models.Encoder` (or any module, for
            ``layer="output"``), already on ``device``.
        images: ``(N, C, H, W)`` uint8 (or float in ``[0, 1]``) images.
        augmentation: the random pipeline making the views (e.g.
            :func:`aligniform.augment.build_augmentation`), on ``device``.
        seed: seed of the augmentations.
        layer: the layer whose features are returned.
        repeats: pairs drawn per image; the rows of repeat ``r`` are
            ``r * N ... (r + 1) * N - 1``.
        batch_size: images per forward pass; it does not change the features
            (BatchNorm uses its running statistics), only the order in which
            augmentation parameters are drawn.
        device: where the augmentation and the encoder run.

    Returns:
        ``(x, y)``: two ``(repeats * N, D)`` float32 CPU tensors; row ``i``
        of both comes from the same image.

    Raises:
        ValueError: ``repeats`` or ``batch_size`` is not a positive integer,
            ``images`` is not a 4-D batch, the layer is unknown, or the encoder
            is not on ``device``.

    Examples:
        >>> from aligniform.augment import build_augmentation
        >>> from aligniform.models import build_model
        >>> model = build_model("convnet", dim=16, in_channels=1, image_size=8).train()
        >>> augmentation = build_augmentation("digits", 8, mean=[0.3], std=[0.4])
        >>> images = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
        >>> x, y = embed_view_pairs(model, images, augmentation, seed=0, repeats=2)
        >>> x.shape, model.training
        (torch.Size([12, 16]), True)
        >>> torch.equal(x, embed_view_pairs(model, images, augmentation, seed=0, repeats=2)[0])
        True
    """
    repeats = check_positive_int(repeats, "repeats")
    firsts: list[torch.Tensor] = []
    seconds: list[torch.Tensor] = []
    with seeded_global_rng(seed, device):
        for _ in range(repeats):
            for views in (firsts, seconds):
                views.append(extract_features(encoder, images, augmentation, [layer], batch_size, device)[layer])
    if repeats == 1:
        return firsts[0], seconds[0]
    return torch.cat(firsts), torch.cat(seconds)
