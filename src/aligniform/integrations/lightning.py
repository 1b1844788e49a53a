"""``HypersphereMonitor``: a Lightning callback measuring held-out positive pairs every N epochs or steps.

Needs ``lightning`` (``pip install 'aligniform[lightning]'``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .._extras import requires_extra
from .._validation import check_positive_int
from .common import Embed, MeasureOptions, Views

with requires_extra("lightning"):
    from lightning.pytorch import LightningModule, Trainer
    from lightning.pytorch.callbacks import Callback

__all__ = ["HypersphereMonitor"]


class HypersphereMonitor(Callback):
    """Measure the encoder on held-out positive pairs during ``Trainer.fit`` and log the numbers.

    Every ``every_n_epochs`` training epochs (at the epoch's end) and/or every
    ``every_n_steps`` optimiser steps, the module embeds ``data`` (see
    :mod:`aligniform.integrations.common` for the batch forms: pairs of
    views, or inputs plus a ``views`` function) and computes
    :func:`~aligniform.integrations.common.hypersphere_metrics`. The values
    go, named ``prefix + metric`` (``hypersphere/alignment``, ...), to every
    logger of the trainer (``logger.log_metrics(values, step=global_step)``)
    and into ``trainer.callback_metrics``, so ``ModelCheckpoint`` or
    ``EarlyStopping`` can monitor them; ``history`` keeps each measurement
    with its epoch and step (the alignment-uniformity trajectory).

    Training is left exactly as it was: the measurement runs without
    gradients, in eval mode, with seeded random generators, and restores
    every module's mode and every generator's state afterwards. Under DDP only
    global rank 0 measures (on the module itself, outside the DDP wrapper) and
    broadcasts the numbers, so every rank logs the same values.

    Args:
        data: held-out batches (a ``DataLoader``, a list), read in full at
            every measurement; keep it small (a few thousand pairs).
        views: ``views(inputs) -> (x_view, y_view)`` when ``data`` yields
            inputs rather than pairs (run with seeded generators: the same
            views every time).
        embed: ``embed(module, inputs) -> (B, d)``; default: ``module(inputs)``.
        every_n_epochs: measure after every this many epochs (``None``: never).
        every_n_steps: measure after every this many optimiser steps
            (``None``: never).
        at_start: also measure before the first step (the trajectory's origin).
        prefix: prepended to each metric's name.
        normalize: as in :func:`~aligniform.integrations.common.hypersphere_metrics`
            (so are ``t``, ``alpha``, ``max_pairs`` and ``seed``).

    Examples:
        >>> from aligniform.integrations.lightning import HypersphereMonitor
        >>> monitor = HypersphereMonitor(held_out_pairs, every_n_epochs=1)  # doctest: +SKIP
        >>> lightning.Trainer(callbacks=[monitor]).fit(module, train_loader)  # doctest: +SKIP
        >>> monitor.history[-1]["hypersphere/uniformity"]  # doctest: +SKIP
        -3.41...
    """

    def __init__(
        self,
        data: Iterable[Any],
        *,
        views: Views | None = None,
        embed: Embed | None = None,
        every_n_epochs: int | None = 1,
        every_n_steps: int | None = None,
        at_start: bool = False,
        prefix: str = "hypersphere/",
        normalize: bool = True,
        t: float = 2.0,
        alpha: float = 2.0,
        max_pairs: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.data, self.views, self.embed = data, views, embed
        self.every_n_epochs = None if every_n_epochs is None else check_positive_int(every_n_epochs, "every_n_epochs")
        self.every_n_steps = None if every_n_steps is None else check_positive_int(every_n_steps, "every_n_steps")
        self.at_start, self.prefix = bool(at_start), str(prefix)
        self.options = MeasureOptions(normalize, t, alpha, max_pairs, seed)
        self.history: list[dict[str, float]] = []
        self._last_step: int | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.at_start:
            self.measure(trainer, pl_module)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        # With gradient accumulation several batches end on one optimiser step: measure it once.
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0 and step != self._last_step:
            self.measure(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.measure(trainer, pl_module)

    def measure(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        """Measure now, log and record the values; returns them (named with ``prefix``)."""
        values: dict[str, float] | None = None
        if trainer.global_rank == 0:
            measured = self.options.measure(
                pl_module, self.data, views=self.views, embed=self.embed, device=pl_module.device
            )
            values = {self.prefix + key: value for key, value in measured.items()}
        values = trainer.strategy.broadcast(values, src=0)
        assert values is not None  # rank 0 measured and broadcast them
        step = trainer.global_step
        for logger in trainer.loggers:
            logger.log_metrics(values, step=step)
        trainer.callback_metrics.update({key: torch.tensor(value) for key, value in values.items()})
        self.history.append({"epoch": trainer.current_epoch, "step": step, **values})
        self._last_step = step
        return values

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
