"""``HypersphereCallback``: a Hugging Face ``TrainerCallback`` measuring held-out positive pairs while it trains.

Needs ``transformers`` (and ``accelerate`` for its ``Trainer``): ``pip install 'aligniform[hf]'``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from .._extras import requires_extra
from .._validation import check_positive_int
from .common import Embed, MeasureOptions, Views

with requires_extra("hf"):
    from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

__all__ = ["HypersphereCallback"]


class HypersphereCallback(TrainerCallback):
    """Measure the model on held-out positive pairs at each evaluation and/or every N steps of a ``Trainer``.

    Each measurement embeds ``data`` (see :mod:`aligniform.integrations.common`
    for the batch forms) and computes
    :func:`~aligniform.integrations.common.hypersphere_metrics`, named
    ``prefix + metric`` (``hypersphere/alignment``, ...):

    * at an evaluation (``on_evaluate=True``) the values are added to the
      evaluation's metrics as ``eval_hypersphere/...``, so
      ``trainer.evaluate()`` returns them and ``metric_for_best_model`` can
      name one;
    * every measurement is logged: through ``trainer.log`` -- the trainer's
      ``log_history`` and every ``report_to`` integration (TensorBoard,
      W&B, ...) -- when the callback was added with :meth:`attach`; into
      ``state.log_history`` only when it was passed as ``callbacks=[...]``
      (a callback is not given the trainer);
    * ``history`` keeps each with its epoch and step.

    Training is left exactly as it was: the measurement runs without
    gradients, in eval mode, with seeded random generators, and restores
    every module's mode and every generator's state afterwards. Each process
    measures the whole held-out set (keep it small), so all agree.

    Args:
        data: held-out batches (a ``DataLoader``, a list), read in full at
            every measurement.
        views: ``views(inputs) -> (x_view, y_view)`` when ``data`` yields
            inputs rather than pairs.
        embed: ``embed(model, inputs) -> (B, d)``; default: the model's output
            (``model(**inputs)`` for a dict of tensors), or its
            ``sentence_embedding`` / ``embeddings`` / ``pooler_output`` entry.
        every_n_steps: measure after every this many optimiser steps (``None``: never).
        on_evaluate: measure at every evaluation.
        prefix: prepended to each metric's name.
        normalize: as in :func:`~aligniform.integrations.common.hypersphere_metrics`
            (so are ``t``, ``alpha``, ``max_pairs`` and ``seed``).

    Examples:
        >>> from aligniform.integrations.transformers import HypersphereCallback
        >>> trainer = transformers.Trainer(model, args, train_dataset=train)  # doctest: +SKIP
        >>> callback = HypersphereCallback(held_out_pairs, every_n_steps=100).attach(trainer)  # doctest: +SKIP
        >>> trainer.train()  # doctest: +SKIP
    """

    def __init__(
        self,
        data: Iterable[Any],
        *,
        views: Views | None = None,
        embed: Embed | None = None,
        every_n_steps: int | None = None,
        on_evaluate: bool = True,
        prefix: str = "hypersphere/",
        normalize: bool = True,
        t: float = 2.0,
        alpha: float = 2.0,
        max_pairs: int | None = None,
        seed: int = 0,
    ) -> None:
        self.data, self.views, self.embed = data, views, embed
        self.every_n_steps = None if every_n_steps is None else check_positive_int(every_n_steps, "every_n_steps")
        self.measure_on_evaluate, self.prefix = bool(on_evaluate), str(prefix)
        self.options = MeasureOptions(normalize, t, alpha, max_pairs, seed)
        self.history: list[dict[str, float]] = []
        self.trainer: Trainer | None = None

    def attach(self, trainer: Trainer) -> HypersphereCallback:
        """Add this callback to ``trainer`` and log through ``trainer.log`` (every ``report_to`` integration)."""
        trainer.add_callback(self)
        self.trainer = trainer
        return self

    def on_step_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        if self.every_n_steps and state.global_step % self.every_n_steps == 0:
            self._report(self.measure(model), state)

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        model: nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.measure_on_evaluate:
            return
        values = self.measure(model)
        if metrics is not None:
            metrics.update({f"eval_{key}": value for key, value in values.items()})
        self._report(values, state)

    def measure(self, model: nn.Module | None) -> dict[str, float]:
        """The values for ``model`` now, named with ``prefix`` (nothing logged)."""
        if model is None:
            raise ValueError("HypersphereCallback needs the model: the Trainer passes it to its callbacks")
        values = self.options.measure(model, self.data, views=self.views, embed=self.embed)
        return {self.prefix + key: value for key, value in values.items()}

    def _report(self, values: dict[str, float], state: TrainerState) -> None:
        self.history.append({"epoch": state.epoch if state.epoch is not None else 0.0, "step": state.global_step})
        self.history[-1].update(values)
        if self.trainer is not None:
            self.trainer.log(dict(values))
        else:
            state.log_history.append({**values, "epoch": state.epoch, "step": state.global_step})
