"""Turning a :class:`~aligniform.config.TrainConfig` into ready objects: data splits, transforms, encoder, optimiser.

The training loop, checkpoint evaluation, the demo, the analysis of a
checkpoint and the studies all build their pieces here, so one config always
means the same data, augmentation and encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .augment import build_augmentation, build_eval_transform
from .config import ConfigError, TrainConfig
from .data import DatasetInfo, ImageDataset, dataset_info, load_dataset, train_val_split
from .evaluate import LinearProbeConfig
from .models import Encoder, build_model

__all__ = [
    "TrainingData",
    "build_encoder",
    "build_optimizer",
    "build_probe_config",
    "build_transforms",
    "input_size",
    "labelled_split",
    "load_evaluation_splits",
    "load_split",
    "load_training_data",
]


@dataclass
class TrainingData:
    """The splits a run uses.

    ``train`` is what the encoder learns from (labels unused); ``bank`` and
    ``val`` are a labelled split of the evaluation training set for per-epoch
    monitoring (5-NN of val against bank, held-out alignment/uniformity on val);
    ``labelled_train`` and ``test`` serve the final evaluation.
    """

    train: ImageDataset
    bank: ImageDataset
    val: ImageDataset
    labelled_train: ImageDataset
    test: ImageDataset


def load_split(config: TrainConfig, split: str) -> ImageDataset:
    """One split of the config's dataset, as the run loads it."""
    return load_dataset(
        config.dataset, config.data_dir, split=split, download=config.download, image_size=config.image_size
    )


def load_evaluation_splits(config: TrainConfig) -> tuple[ImageDataset, ImageDataset]:
    """The labelled training split and the test split that the final evaluation uses."""
    info = dataset_info(config.dataset)
    return load_split(config, labelled_split(info)), load_split(config, info.test_split)


def build_probe_config(config: TrainConfig) -> LinearProbeConfig:
    """The linear probe's schedule: the paper's 100 epochs, or the short one for small datasets."""
    return LinearProbeConfig() if config.linear_probe == "paper" else LinearProbeConfig.short()


def load_training_data(config: TrainConfig) -> TrainingData:
    """Every split a training run needs, with the monitoring split held out of training where they overlap."""
    info = dataset_info(config.dataset)
    labelled_train, test = load_evaluation_splits(config)
    bank_idx, val_idx = train_val_split(labelled_train.labels.numpy(), max(config.val_fraction, 0.02), config.seed)
    bank, val = labelled_train.subset(bank_idx), labelled_train.subset(val_idx)
    if info.train_split == labelled_split(info) and config.val_fraction > 0:
        # The validation images are held out of self-supervised training too.
        train = labelled_train.subset(bank_idx)
    else:
        train = load_split(config, info.train_split)
    return TrainingData(train=train, bank=bank, val=val, labelled_train=labelled_train, test=test)


def labelled_split(info: DatasetInfo) -> str:
    """The labelled split the evaluation trains its classifiers on.

    Examples:
        >>> from aligniform.data import dataset_info
        >>> labelled_split(dataset_info("stl10")), labelled_split(dataset_info("digits"))
        ('train', 'train')
    """
    # STL-10 trains on train+unlabeled but evaluates with the labelled train split.
    return "train" if "train" in info.splits else info.train_split


def build_transforms(config: TrainConfig, data: ImageDataset) -> tuple[nn.Module, nn.Module]:
    """The training augmentation and the deterministic evaluation transform for ``data``.

    Raises:
        ConfigError: the config's augmentation cannot be built.
    """
    info = dataset_info(config.dataset)
    mean, std = info.mean, info.std
    if config.dataset == "imagefolder":  # statistics unknown in advance: measure them
        mean, std = _channel_stats(data.images)
    kind = config.augmentation or info.augmentation
    size = input_size(config, data)
    try:
        augmentation = build_augmentation(kind, size, mean, std)
    except ValueError as error:
        raise ConfigError(f"augmentation: {error}") from None
    # Crops smaller than the images are evaluated as the paper does (Resize(70) + CenterCrop(64),
    # scaled); at the images' own size the evaluation transform is the identity.
    resize = size if size == data.image_size else None
    return augmentation, build_eval_transform(size, mean, std, resize=resize)


def input_size(config: TrainConfig, data: ImageDataset) -> int:
    """The encoder's input side: ``config.input_size``, else the images' size."""
    return config.input_size or data.image_size


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    sample = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:2000]].double() / 255
    return tuple(sample.mean((0, 2, 3)).tolist()), tuple(sample.std((0, 2, 3)).clamp_min(1e-3).tolist())


def build_encoder(config: TrainConfig, data: ImageDataset) -> Encoder:
    """A freshly initialised encoder for ``data``'s channels at the config's input size.

    Raises:
        ConfigError: the config's model cannot take that input.
    """
    try:
        return build_model(config.model, dim=config.dim, in_channels=data.channels, image_size=input_size(config, data))
    except ValueError as error:
        raise ConfigError(f"model: {error}") from None


def build_optimizer(config: TrainConfig, model: nn.Module, objective: nn.Module | None = None) -> torch.optim.Optimizer:
    """SGD with the config's momentum and weight decay, at the batch-size-scaled learning rate.

    The objective's parameters (learnt arguments such as ``tau=learn(0.07)``) form a second
    group without weight decay, as CLIP trains its logit scale; an objective without
    any adds no group, so the optimiser state of older checkpoints still loads.
    """
    groups: list[dict] = [{"params": list(model.parameters())}]
    learnt = [] if objective is None else [p for p in objective.parameters() if p.requires_grad]
    if learnt:
        groups.append({"params": learnt, "weight_decay": 0.0})
    return torch.optim.SGD(groups, lr=config.scaled_lr, momentum=config.momentum, weight_decay=config.weight_decay)
