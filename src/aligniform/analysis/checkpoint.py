"""Embeddings from an aligniform checkpoint: two seeded augmented views of every image of a dataset split."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .embeddings import EmbeddingSet

if TYPE_CHECKING:
    from ..config import TrainConfig
    from ..data import ImageDataset
    from ..train.restore import RestoredEncoder

__all__ = ["embeddings_from_checkpoint"]


def embeddings_from_checkpoint(
    checkpoint: str | Path,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    split: str = "test",
    layer: str | None = "output",
    device: str | torch.device = "cpu",
    seed: int = 0,
    batch_size: int = 256,
) -> EmbeddingSet:
    """Embed two augmented views of every image of a dataset split with a checkpoint's encoder.

    The views use the augmentation the checkpoint was trained with, drawn
    from torch's global RNG seeded with ``seed`` and restored afterwards (the
    caller's random stream is unchanged). With the defaults (test split,
    output layer, seed 0, batch 256) ``x``/``y`` are the pairs whose alignment
    the training run reports in ``results.json``.

    Args:
        checkpoint: path of an aligniform checkpoint (``checkpoint.pt``/``best.pt``).
        dataset: dataset name; default: the one the checkpoint was trained on.
            Another dataset must have the same number of channels; its
            images are resized to the encoder's input size.
        data_dir: folder of the dataset files; default: the checkpoint's.
        split: dataset split to embed.
        layer: encoder layer to read (``encoder.layer_names``); ``None`` means
            the model's default evaluation layer. Layers other than
            ``"output"`` are not unit-norm: analyse them with ``normalize=True``.
        device: ``"cpu"``, ``"cuda"``, ``"auto"`` or a :class:`torch.device`.
        seed: seed of the augmentations.
        batch_size: images per forward pass (does not change the result).

    Returns:
        An :class:`EmbeddingSet` with ``x``, ``y`` (``(N, D)`` float32
        tensors: the two views) and the split's ``labels``.

    Raises:
        CheckpointError: the checkpoint is missing or corrupt.
        DatasetError: the dataset or split cannot be loaded.
        ValueError: unknown layer, or a dataset the encoder cannot take.

    Examples:
        >>> emb = embeddings_from_checkpoint("runs/run/checkpoint.pt")  # doctest: +SKIP
        >>> emb.x.shape  # doctest: +SKIP
        torch.Size([1000, 128])
    """
    # Imported here: loading a checkpoint pulls in the training stack, which the array inputs never need.
    from ..build import build_transforms, labelled_split
    from ..data import dataset_info
    from ..device import resolve_device
    from ..evaluate import embed_view_pairs, recomputed_batchnorm
    from ..models.base import resolve_eval_layer
    from ..train.restore import restore_encoder

    device = resolve_device(device)
    # Building the model draws its (then overwritten) initial weights from the global RNG: fork it.
    with torch.random.fork_rng(devices=[]):
        restored = restore_encoder(checkpoint, device)
    encoder = restored.encoder
    layer = resolve_eval_layer(encoder, layer)
    config, data = _load_split_for(restored, checkpoint, dataset, data_dir, split)
    augmentation, eval_transform = build_transforms(config, data)
    # BatchNorm statistics of the clean labelled training images, as the run's final evaluation takes them.
    labelled = labelled_split(dataset_info(config.dataset))
    reference = _load_split_for(restored, checkpoint, dataset, data_dir, labelled)[1]
    # The same draws as the training run's final evaluation: the pairs whose alignment results.json reports.
    with recomputed_batchnorm(encoder, reference.images, eval_transform.to(device), device=device):
        x, y = embed_view_pairs(
            encoder, data.images, augmentation.to(device), seed=seed, layer=layer, batch_size=batch_size, device=device
        )
    source = (
        f"checkpoint {checkpoint}: {config.dataset} {split} split, layer {layer}, two augmented views (seed {seed})"
    )
    return EmbeddingSet(x, y, data.labels.clone(), source)


def _load_split_for(
    restored: RestoredEncoder,
    checkpoint: str | Path,
    dataset: str | None,
    data_dir: str | Path | None,
    split: str,
) -> tuple[TrainConfig, ImageDataset]:
    """The run's config pointed at the requested data, and that split, at a size the encoder takes."""
    from ..data import load_dataset

    config, encoder = restored.config, restored.encoder
    image_size = config.image_size
    if dataset is not None and dataset.lower() != config.dataset.lower():
        # Another dataset's native size may not fit the encoder: use the size it was trained at.
        image_size = restored.info.image_size
    config = config.replace(dataset=dataset, data_dir=None if data_dir is None else str(data_dir))
    data = load_dataset(config.dataset, config.data_dir, split=split, image_size=image_size)
    if data.channels != encoder.in_channels:
        raise ValueError(
            f"dataset {config.dataset} has {data.channels}-channel images but the encoder of {checkpoint} "
            f"takes {encoder.in_channels}-channel images; pick a dataset like the one it was trained on"
        )
    return config, data
