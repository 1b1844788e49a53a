"""Bringing a trained encoder back from a checkpoint, and evaluating it."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import TrainConfig
from ..data import dataset_info, load_dataset
from ..models import build_model
from .checkpoint import CheckpointError, load_checkpoint
from .setup import build_transforms, labelled_split
from ..distributed import resolve_device

PROTOCOLS = {"linear": ("linear",), "knn": ("knn",), "mean": ("mean",), "all": ("linear", "knn", "mean")}


def load_encoder(path: str | Path, device: str | torch.device = "cpu"):
    """The encoder of a checkpoint (in eval mode) and the config it was trained with.

    Examples:
        >>> from aligniform.train.restore import load_encoder
        >>> encoder, config = load_encoder("runs/demo/checkpoint.pt")  # doctest: +SKIP
    """
    state = load_checkpoint(path, map_location="cpu")
    config = TrainConfig.from_dict(state["config"])
    info = state["model_info"]
    model = build_model(info["name"], dim=info["dim"], in_channels=info["in_channels"], image_size=info["image_size"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise CheckpointError(f"checkpoint {path} does not match its model {info['name']}: {error}") from None
    return model.to(device).eval(), config


def evaluate_checkpoint(path, layer=None, protocol="all", dataset=None, data_dir=None, device="auto", k=None) -> dict:
    """Evaluate a checkpoint's encoder on a labelled train/test pair (the run's dataset by default)."""
    from ..evaluate import LinearProbeConfig, evaluate_encoder

    device = resolve_device(device)
    model, config = load_encoder(path, device)
    config = config.replace(dataset=dataset, data_dir=data_dir)
    if layer is not None and layer not in model.layer_names:
        raise ValueError(f"--layer {layer!r} is not a layer of {config.model}; valid layers: {', '.join(model.layer_names)}")
    info = dataset_info(config.dataset)
    load = lambda split: load_dataset(config.dataset, config.data_dir, split=split, image_size=config.image_size)  # noqa: E731
    train, test = load(labelled_split(info)), load(info.test_split)
    augmentation, eval_transform = build_transforms(config, train)
    probe = LinearProbeConfig() if config.linear_probe == "paper" else LinearProbeConfig.short()
    results = evaluate_encoder(
        model, train, test, layer=layer or config.eval_layer, protocols=PROTOCOLS[protocol],
        eval_transform=eval_transform, augmentation=augmentation, probe_config=probe,
        k=k or config.knn_k, device=device,
    )
    results.update({"checkpoint": str(path), "dataset": config.dataset,
                    "eval_layer": layer or config.eval_layer or model.default_eval_layer})
    return results
