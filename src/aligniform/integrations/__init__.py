"""aligniform inside the training loops people already use: measure an encoder on the hypersphere while it trains.

Each framework has its own module, imported only when asked for, so the core
install stays as it is; each framework is its own extra
(``pip install 'aligniform[torchmetrics]'``, ``[lightning]``, ``[hf]``, ``[st]``):

* :mod:`aligniform.integrations.torchmetrics` -- ``HypersphereMetrics``, a
  ``torchmetrics.Metric`` (streaming, synchronised across processes);
* :mod:`aligniform.integrations.lightning` -- ``HypersphereMonitor``, a
  Lightning callback;
* :mod:`aligniform.integrations.transformers` -- ``HypersphereCallback``, a
  Hugging Face ``TrainerCallback``;
* :mod:`aligniform.integrations.sentence_transformers` --
  ``HypersphereEvaluator`` and the losses ``ObjectiveLoss`` / ``AlignUniformLoss``.

:mod:`aligniform.integrations.common` (re-exported here) needs no extra: it
embeds held-out positive pairs without disturbing training and measures them,
for a hand-written loop. See ``docs/integrations/``.
"""

from .common import (
    METRIC_KEYS,
    MeasureOptions,
    embed_pairs,
    hypersphere_metrics,
    measure_pairs,
    preserved_training_state,
)

__all__ = [
    "METRIC_KEYS",
    "MeasureOptions",
    "embed_pairs",
    "hypersphere_metrics",
    "measure_pairs",
    "preserved_training_state",
]
