"""Bringing a trained encoder back from a checkpoint, and evaluating it."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import TrainConfig
from ..distributed import resolve_device
from ..models import build_model
from .checkpoint import CheckpointError, load_checkpoint
from .setup import build_probe_config, build_transforms, load_evaluation_splits

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
    from ..evaluate import evaluate_encoder

    device = resolve_device(device)
    model, config = load_encoder(path, device)
    config = config.replace(dataset=dataset, data_dir=data_dir)
    if layer is not None and layer not in model.layer_names:
        raise ValueError(
            f"--layer {layer!r} is not a layer of {config.model}; valid layers: {', '.join(model.layer_names)}"
        )
    train, test = load_evaluation_splits(config)
    augmentation, eval_transform = build_transforms(config, train)
    results = evaluate_encoder(
        model,
        train,
        test,
        layer=layer or config.eval_layer,
        protocols=PROTOCOLS[protocol],
        eval_transform=eval_transform,
        augmentation=augmentation,
        probe_config=build_probe_config(config),
        k=k or config.knn_k,
        device=device,
    )
    results.update(
        {
            "checkpoint": str(path),
            "dataset": config.dataset,
            "eval_layer": layer or config.eval_layer or model.default_eval_layer,
        }
    )
    return results
