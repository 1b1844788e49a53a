"""``HypersphereMonitor``: a Lightning callback measuring held-out positive pairs every N epochs or steps.

Needs ``lightning`` (``pip install 'aligniform[lightning]'``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .._extras import requires_extra
from .._validation import check_callable, check_positive_int
from .common import Embed, MeasureOptions, Views

with requires_extra("lightning"):
    from lightning.pytorch import LightningModule, Trainer
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.trainer.states import TrainerFn

__all__ = ["HypersphereMonitor"]


class HypersphereMonitor(Callback):
    """Measure the encoder on held-out positive pairs while Lightning trains and validates, and log the numbers.

    Every ``every_n_epochs`` training epochs (at the epoch's end), every
    ``every_n_steps`` optimiser steps and at the end of every validation
    (``on_validation``; ``trainer.validate()`` included), the module embeds
    ``data`` (see :mod:`aligniform.integrations.common` for the batch forms:
    pairs of views, or inputs plus a ``views`` function) and computes
    :func:`~aligniform.integrations.common.hypersphere_metrics`. The values
    are logged with ``pl_module.log`` -- Lightning's own logging path, so
    every logger, the progress bar (``prog_bar``), ``trainer.callback_metrics``,
    ``ModelCheckpoint`` and ``EarlyStopping`` see them, synchronised across
    processes -- named ``prefix + metric`` (``hypersphere/alignment``, ...)
    at the end of training epochs and ``validation_prefix + metric``
    (``val_hypersphere/alignment``, ...) at validation. The step-wise
    measurements (``every_n_steps``, ``at_start``) go to every logger at their
    step and into ``trainer.callback_metrics``, as Lightning's
    ``LearningRateMonitor`` reports its values (``self.log`` would repeat a
    step's value at every later step of the epoch). Weights measured once are not
    measured again: a validation and an epoch end at the same step share one
    measurement. ``history`` keeps each measurement (named with ``prefix``)
    with its epoch and step: the alignment-uniformity trajectory.

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
        on_validation: measure at the end of every validation (not during the
            sanity check).
        at_start: also measure before the first step (the trajectory's
            origin), logged at the starting step.
        prefix: prepended to each metric's name during training.
        validation_prefix: prepended to each metric's name at validation.
        prog_bar: also show the values in the progress bar.
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
        on_validation: bool = True,
        at_start: bool = False,
        prefix: str = "hypersphere/",
        validation_prefix: str = "val_hypersphere/",
        prog_bar: bool = False,
        normalize: bool = True,
        t: float = 2.0,
        alpha: float = 2.0,
        max_pairs: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        # Checked here: a wrong argument would otherwise fail only at the first measurement, mid-training.
        check_callable(views, "views", "a function inputs -> (x_view, y_view)")
        check_callable(embed, "embed", "a function (module, inputs) -> (B, d) embeddings")
        self.data, self.views, self.embed = data, views, embed
        self.every_n_epochs = None if every_n_epochs is None else check_positive_int(every_n_epochs, "every_n_epochs")
        self.every_n_steps = None if every_n_steps is None else check_positive_int(every_n_steps, "every_n_steps")
        self.on_validation, self.at_start, self.prog_bar = bool(on_validation), bool(at_start), bool(prog_bar)
        self.prefix, self.validation_prefix = str(prefix), str(validation_prefix)
        self.options = MeasureOptions(normalize, t, alpha, max_pairs, seed)
        self.history: list[dict[str, float]] = []
        self._last_step: int | None = None
        self._latest: tuple[int, dict[str, float]] | None = None  # (global step, values) of the last fit measurement

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._latest = None  # a new fit: weights at a step already seen may differ (another checkpoint, a re-init)
        if self.at_start:
            self._log(trainer, pl_module, self._values(trainer, pl_module), self.prefix, on_step=True)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        # With gradient accumulation several batches end on one optimiser step: measure it once.
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0 and step != self._last_step:
            self._last_step = step
            self._log(trainer, pl_module, self._values(trainer, pl_module), self.prefix, on_step=True)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._log(trainer, pl_module, self._values(trainer, pl_module), self.prefix, on_step=False)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.on_validation and not trainer.sanity_checking:
            self._log(trainer, pl_module, self._values(trainer, pl_module), self.validation_prefix, on_step=False)

    def measure(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        """The values of the module now, named with ``prefix``, recorded in ``history``; logging is the hooks' part.

        Every process must call it (rank 0 measures and broadcasts). During ``fit`` a second call at the same
        global step returns the first one's values without measuring again.
        """
        return {self.prefix + key: value for key, value in self._values(trainer, pl_module).items()}

    def _values(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        step = trainer.global_step
        fitting = trainer.state.fn == TrainerFn.FITTING
        if fitting and self._latest is not None and self._latest[0] == step:
            return self._latest[1]
        values: dict[str, float] | None = None
        if trainer.global_rank == 0:
            values = self.options.measure(
                pl_module, self.data, views=self.views, embed=self.embed, device=pl_module.device
            )
        values = trainer.strategy.broadcast(values, src=0)
        assert values is not None  # rank 0 measured and broadcast them
        self.history.append(
            {
                "epoch": trainer.current_epoch,
                "step": step,
                **{self.prefix + key: value for key, value in values.items()},
            }
        )
        if fitting:
            self._latest = (step, values)
        return values

    def _log(
        self, trainer: Trainer, pl_module: LightningModule, values: dict[str, float], prefix: str, *, on_step: bool
    ) -> None:
        named = {prefix + key: value for key, value in values.items()}
        if on_step:
            # Lightning re-reports an on_step value logged at one step at every later step of the epoch, which would
            # fill the logs with stale measurements; step-wise values go to the loggers directly, as Lightning's own
            # LearningRateMonitor and DeviceStatsMonitor send theirs (the loggers write on rank 0 only).
            for logger in trainer.loggers:
                logger.log_metrics(named, step=trainer.global_step)
            trainer.callback_metrics.update({key: torch.tensor(value) for key, value in named.items()})
            return
        # float64 where the device has it: Lightning keeps a tensor's precision, so the loggers get the exact values.
        dtype = torch.float32 if pl_module.device.type == "mps" else torch.float64
        for key, value in named.items():
            pl_module.log(
                key,
                torch.tensor(value, dtype=dtype, device=pl_module.device),
                on_step=False,
                on_epoch=True,
                prog_bar=self.prog_bar,
                sync_dist=True,
                batch_size=1,
            )

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
