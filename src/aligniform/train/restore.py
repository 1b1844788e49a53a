"""Bringing a trained encoder back from a checkpoint, and evaluating it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..build import build_probe_config, build_transforms, load_evaluation_splits
from ..config import ConfigError, TrainConfig
from ..device import resolve_device
from ..evaluate import evaluate_encoder
from ..models import Encoder, build_model, resolve_eval_layer
from .checkpoint import CheckpointError, ModelInfo, check_state, damaged_checkpoint, load_checkpoint, read_model_info

PROTOCOL_SELECTIONS: dict[str, tuple[str, ...]] = {
    "linear": ("linear",),
    "knn": ("knn",),
    "mean": ("mean",),
    "all": ("linear", "knn", "mean"),
}
"""What ``evaluate_checkpoint(protocol=...)`` (``aligniform eval --protocol``) runs, by choice."""


@dataclass
class RestoredEncoder:
    """A checkpoint's encoder (in eval mode), the config it was trained with, and its model description."""

    encoder: Encoder
    config: TrainConfig
    info: ModelInfo


def restore_encoder(path: str | Path, device: str | torch.device = "cpu") -> RestoredEncoder:
    """Load a checkpoint once and rebuild its encoder, config and model description.

    Raises:
        CheckpointError: the checkpoint is missing, corrupt, or does not match its model.

    Examples:
        >>> from aligniform.train.restore import restore_encoder
        >>> restored = restore_encoder("runs/demo/checkpoint.pt")  # doctest: +SKIP
        >>> restored.info.image_size  # doctest: +SKIP
        28
    """
    state = load_checkpoint(path, map_location="cpu")
    check_state(state, path)
    try:
        config = TrainConfig.from_dict(state["config"])
    except ConfigError as error:
        raise CheckpointError(f"checkpoint {path} holds no usable configuration ({error})") from None
    with damaged_checkpoint(path):
        info = read_model_info(state)
        model = build_model(info.name, dim=info.dim, in_channels=info.in_channels, image_size=info.image_size)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:  # torch lists every key on its own line: the first says enough
        first = str(error).splitlines()[0].rstrip(":. ")
        raise CheckpointError(f"checkpoint {path} does not match its model {info.name} ({first})") from None
    return RestoredEncoder(model.to(device).eval(), config, info)


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> tuple[Encoder, TrainConfig]:
    """The encoder of a checkpoint (in eval mode) and the config it was trained with.

    Examples:
        >>> from aligniform.train.restore import load_encoder
        >>> encoder, config = load_encoder("runs/demo/checkpoint.pt")  # doctest: +SKIP
    """
    restored = restore_encoder(path, device)
    return restored.encoder, restored.config


def evaluate_checkpoint(
    path: str | Path,
    layer: str | None = None,
    protocol: str = "all",
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    device: str | torch.device = "auto",
    k: int | None = None,
) -> dict:
    """Evaluate a checkpoint's encoder on a labelled train/test pair (the run's dataset by default).

    Args:
        path: the checkpoint.
        layer: the layer to evaluate; default the run's ``eval_layer``, else the model's default.
        protocol: a key of :data:`PROTOCOL_SELECTIONS`.
        dataset: evaluate on this dataset instead of the run's.
        data_dir: where that dataset lives.
        device: where to evaluate (``"auto"``: CUDA when available).
        k: neighbours of the k-NN classifier; default the run's ``knn_k``.

    Returns:
        :func:`~aligniform.evaluate.evaluate_encoder`'s results plus ``checkpoint``,
        ``dataset`` and ``eval_layer``.
    """
    device = resolve_device(device)
    model, config = load_encoder(path, device)
    config = config.replace(dataset=dataset, data_dir=data_dir)
    layer = resolve_eval_layer(model, layer or config.eval_layer)
    train, test = load_evaluation_splits(config)
    augmentation, eval_transform = build_transforms(config, train)
    results = evaluate_encoder(
        model,
        train,
        test,
        layer=layer,
        protocols=PROTOCOL_SELECTIONS[protocol],
        eval_transform=eval_transform,
        augmentation=augmentation,
        probe_config=build_probe_config(config),
        k=k or config.knn_k,
        device=device,
        batchnorm="recompute",  # as the run's own final evaluation: results.json and `aligniform eval` agree
    )
    results.update({"checkpoint": str(path), "dataset": config.dataset, "eval_layer": layer})
    return results
