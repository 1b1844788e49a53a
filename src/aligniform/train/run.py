"""A whole run: train as a config says, evaluate the final encoder, write ``results.json``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from .._faults import fault_point
from .._io import write_json
from ..build import build_probe_config
from ..config import TrainConfig
from ..distributed import DistributedContext
from ..evaluate import EVALUATION_PROTOCOLS, evaluate_encoder
from .run_folder import ResultsNotSaved
from .trainer import Trainer


def run(
    config: TrainConfig,
    resume: bool = False,
    context: DistributedContext | None = None,
    overwrite: bool = False,
) -> dict[str, Any] | None:
    """Train as ``config`` says, evaluate the final encoder, write ``results.json``; return the results.

    Under torchrun only rank 0 evaluates and returns the results (others return None).

    Args:
        config: the run.
        resume: continue the run in ``config.out`` (see :meth:`Trainer.fit`).
        context: the torchrun context (default: from the environment).
        overwrite: replace a run that ``config.out`` already holds (without it or ``resume``, such a folder is
            refused).

    Raises:
        RunFolderError: the folder cannot be used as asked.
        RunFolderWriteError: a write failed (an :class:`OSError`); :class:`ResultsNotSaved` (a subclass) when only
            ``results.json`` could not be written, with the results it would have held.

    Examples:
        >>> from aligniform.config import TrainConfig
        >>> from aligniform.train import run
        >>> results = run(TrainConfig(dataset="digits", epochs=1, out="/tmp/aligniform-doc"))  # doctest: +SKIP
        >>> sorted(results)[:3]  # doctest: +SKIP
        ['alignment', 'effective_rank', 'knn_acc']
    """
    started = time.perf_counter()
    with Trainer(config, context) as trainer:  # the run folder stays locked until the results are written
        trainer.fit(resume=resume, overwrite=overwrite)
        if not trainer.context.is_main:
            return None
        results = evaluate_trained(trainer)
        results["train_seconds"] = time.perf_counter() - started
        path = trainer.out / "results.json"
        try:
            fault_point("results", path)
            write_json(path, results)
        except OSError as error:
            raise ResultsNotSaved(error, path, results) from None
    return results


def evaluate_trained(trainer: Trainer, protocols: Sequence[str] = EVALUATION_PROTOCOLS) -> dict[str, Any]:
    """The final evaluation of a run: linear probe, 5-NN, mean classifier and the geometry metrics."""
    config = trainer.config
    if config.linear_probe == "none":
        protocols = tuple(p for p in protocols if p != "linear")
    layer = trainer.eval_layer
    results: dict[str, Any] = evaluate_encoder(
        trainer.model,
        trainer.data.labelled_train,
        trainer.data.test,
        layer=layer,
        protocols=protocols,
        eval_transform=trainer.eval_transform,
        augmentation=trainer.augmentation,
        probe_config=build_probe_config(config),
        k=config.knn_k,
        device=trainer.device,
        max_pairs=None if len(trainer.data.test) <= 20_000 else 2_000_000,
        batchnorm="recompute",  # BatchNorm statistics of the clean training images, see evaluate/batchnorm.py
    )
    results.update({"objective": config.objective, "epochs": trainer.epoch, "eval_layer": layer})
    return results
