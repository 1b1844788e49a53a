"""``HypersphereCallback``: a Hugging Face ``TrainerCallback`` measuring held-out positive pairs while it trains.

Needs ``transformers`` (and ``accelerate`` for its ``Trainer``): ``pip install 'aligniform[hf]'``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from .._extras import requires_extra
from .._validation import check_callable, check_positive_int
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

    * every ``every_n_steps`` optimiser steps, a training-time measurement,
      logged as ``hypersphere/...`` (TensorBoard and W&B show it under
      ``train/``);
    * at an evaluation (``on_evaluate=True``), an evaluation-time one, named
      with the evaluation's prefix (``eval_hypersphere/...``, shown under
      ``eval/``): added to the evaluation's metrics, so
      ``trainer.evaluate()`` returns them and ``metric_for_best_model`` can
      name one. When a step is due for both, the model is measured once, at
      the evaluation;
    * each measurement is a log record of its own, through ``trainer.log`` --
      the trainer's ``log_history`` and every ``report_to`` integration --
      when the callback was added with :meth:`attach`; into
      ``state.log_history`` only when it was passed as ``callbacks=[...]``
      (a callback is not given the trainer). The Trainer's own records (its
      training loss every ``logging_steps``) are left as they are;
    * ``history`` keeps each with its epoch and step.

    Training is left exactly as it was: the measurement runs without
    gradients, in eval mode, with seeded random generators, and restores
    every module's mode and every generator's state afterwards. Each process
    measures the whole held-out set (keep it small), so all log the same
    numbers.

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
        # Checked here, as the Lightning monitor does: a wrong argument would otherwise fail only mid-training.
        check_callable(views, "views", "a function inputs -> (x_view, y_view)")
        check_callable(embed, "embed", "a function (model, inputs) -> (B, d) embeddings")
        self.data, self.views, self.embed = data, views, embed
        self.every_n_steps = None if every_n_steps is None else check_positive_int(every_n_steps, "every_n_steps")
        self.measure_on_evaluate, self.prefix = bool(on_evaluate), str(prefix)
        self.options = MeasureOptions(normalize, t, alpha, max_pairs, seed)
        self.history: list[dict[str, float]] = []
        self.trainer: Trainer | None = None
        self._latest: tuple[int, dict[str, float]] | None = None  # (step, values) of the last training-time measurement

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
        if not self.every_n_steps or state.global_step % self.every_n_steps:
            return
        # The Trainer's DefaultFlowCallback (always first) has decided by now whether this step evaluates; if it
        # does, the evaluation measures these same weights, so measuring here too would log them twice.
        if self.measure_on_evaluate and control.should_evaluate:
            return
        values = self.measure(model)
        self._record(values, state)
        self._latest = (state.global_step, values)
        self._log(values, state, control)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._latest = None  # after training, weights may change at the same step (loading the best model)

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
        if self._latest is not None and self._latest[0] == state.global_step:
            # An evaluation at the end of an epoch (eval_strategy="epoch") comes after on_step_end: same weights.
            values = self._latest[1]
        else:
            values = self.measure(model)
            self._record(values, state)
        named = {f"{_evaluation_prefix(metrics)}_{key}": value for key, value in values.items()}
        if metrics is not None:
            metrics.update(named)  # what trainer.evaluate() returns and metric_for_best_model reads
        self._log(named, state, control)

    def measure(self, model: nn.Module | None) -> dict[str, float]:
        """The values for ``model`` now, named with ``prefix`` (nothing logged)."""
        if model is None:
            raise ValueError("HypersphereCallback needs the model: the Trainer passes it to its callbacks")
        values = self.options.measure(model, self.data, views=self.views, embed=self.embed)
        return {self.prefix + key: value for key, value in values.items()}

    def _record(self, values: dict[str, float], state: TrainerState) -> None:
        entry: dict[str, float] = {"epoch": state.epoch if state.epoch is not None else 0.0, "step": state.global_step}
        self.history.append({**entry, **values})

    def _log(self, values: dict[str, float], state: TrainerState, control: TrainerControl) -> None:
        if self.trainer is None:
            state.log_history.append({**values, "epoch": state.epoch, "step": state.global_step})
            return
        # trainer.log ends in the callbacks' on_log, which clears should_log: the flag DefaultFlowCallback set for
        # the Trainer's own training-loss record of this step. Put it back so that record is still written.
        should_log = control.should_log
        self.trainer.log(dict(values))
        control.should_log = should_log


def _evaluation_prefix(metrics: dict[str, float] | None) -> str:
    """The ``metric_key_prefix`` of an evaluation (``eval``, or what ``trainer.evaluate`` was given), from its keys."""
    # The Trainer names every evaluation metric "<prefix>_..." and always reports "<prefix>_runtime".
    for key in metrics or {}:
        if key.endswith("_runtime"):
            return key[: -len("_runtime")]
    return "eval"
