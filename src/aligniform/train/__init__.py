"""Training: the loop (:class:`Trainer`) and :func:`run`, which trains and then evaluates."""

from __future__ import annotations

import time

from ..config import TrainConfig
from .checkpoint import CheckpointError, load_checkpoint, save_atomic
from .trainer import Trainer, TrainingDiverged, write_json

__all__ = [
    "CheckpointError",
    "Trainer",
    "TrainingDiverged",
    "load_checkpoint",
    "run",
    "save_atomic",
    "evaluate_trained",
]


def run(config: TrainConfig, resume: bool = False, context=None) -> dict | None:
    """Train as ``config`` says, evaluate the final encoder, write ``results.json``; return the results.

    Under torchrun only rank 0 evaluates and returns the results (others return None).

    Examples:
        >>> from aligniform.config import TrainConfig
        >>> from aligniform.train import run
        >>> results = run(TrainConfig(dataset="digits", epochs=1, out="/tmp/aligniform-doc"))  # doctest: +SKIP
        >>> sorted(results)[:3]  # doctest: +SKIP
        ['alignment', 'effective_rank', 'knn_acc']
    """
    started = time.perf_counter()
    trainer = Trainer(config, context)
    trainer.fit(resume=resume)
    if not trainer.context.is_main:
        return None
    results = evaluate_trained(trainer)
    results["train_seconds"] = time.perf_counter() - started
    write_json(trainer.out / "results.json", results)
    return results


def evaluate_trained(trainer: Trainer, protocols=("linear", "knn", "mean")) -> dict:
    """The final evaluation of a run: linear probe, 5-NN, mean classifier and the geometry metrics."""
    from ..evaluate import evaluate_encoder
    from .setup import build_probe_config

    config = trainer.config
    if config.linear_probe == "none":
        protocols = tuple(p for p in protocols if p != "linear")
    results = evaluate_encoder(
        trainer.model,
        trainer.data.labelled_train,
        trainer.data.test,
        layer=config.eval_layer,
        protocols=protocols,
        eval_transform=trainer.eval_transform,
        augmentation=trainer.augmentation,
        probe_config=build_probe_config(config),
        k=config.knn_k,
        device=trainer.device,
        max_pairs=None if len(trainer.data.test) <= 20_000 else 2_000_000,
    )
    results.update(
        {
            "objective": config.objective,
            "epochs": trainer.epoch,
            "eval_layer": config.eval_layer or trainer.model.default_eval_layer,
        }
    )
    return results
