"""sentence-transformers: an evaluator reporting alignment and uniformity, and losses written as aligniform objectives.

* :class:`HypersphereEvaluator` -- a ``SentenceEvaluator`` measuring sentence
  pairs (paraphrases, query-document pairs): alignment, uniformity and the
  rest of :func:`~aligniform.integrations.common.hypersphere_metrics`, the
  numbers SimCSE reports and ships no code for.
* :class:`ObjectiveLoss` -- any :class:`aligniform.Objective` spec
  (``"align(alpha=2) + uniform(t=2)"``, ``"contrastive(tau=0.05)"``, ...) as a
  loss for ``SentenceTransformerTrainer`` on (anchor, positive) pairs;
  :class:`AlignUniformLoss` is Wang & Isola's align + uniform by name.

Needs ``sentence-transformers`` (``pip install 'aligniform[st]'``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._extras import requires_extra
from .._validation import check_positive, check_positive_int, class_ids
from ..objective import Objective
from .common import HIGHER_IS_BETTER, METRIC_KEYS, MeasureOptions, preserved_training_state

with requires_extra("st"):
    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator
    except ImportError:  # 3.x - 5.x
        from sentence_transformers.evaluation import SentenceEvaluator  # type: ignore[no-redef]

__all__ = ["AlignUniformLoss", "HypersphereEvaluator", "ObjectiveLoss"]

_CITATION = """@inproceedings{wang2020hypersphere,
    title={Understanding Contrastive Representation Learning through Alignment and Uniformity on the Hypersphere},
    author={Wang, Tongzhou and Isola, Phillip},
    booktitle={International Conference on Machine Learning},
    year={2020}
}"""


class HypersphereEvaluator(SentenceEvaluator):
    """Alignment, uniformity, modality gap, retrieval (and tolerance, mean classifier with labels) of sentence pairs.

    ``sentences1[i]`` and ``sentences2[i]`` are a positive pair (a sentence
    and its paraphrase, a query and its document). Called with a model, it
    embeds both sides with ``model.encode`` and returns
    :func:`~aligniform.integrations.common.hypersphere_metrics` of them as
    Python floats, prefixed with ``name`` when one is given (as every
    sentence-transformers evaluator does); ``SentenceTransformerTrainer``
    logs them as ``eval_<name>_alignment`` etc. The model's train/eval mode is
    restored afterwards.

    Args:
        sentences1: the first side of each pair.
        sentences2: the second side, row for row.
        labels: optional class per pair (enables ``tolerance`` and
            ``mean_classifier_acc``): integers (-1 = unlabelled) or class
            names, mapped to ids in sorted order (the metrics only compare
            labels, so they are the same); checked here, one per pair.
        batch_size: sentences per forward pass.
        name: prefix of the metric names.
        primary_metric: the metric the trainer uses to pick the best
            checkpoint (a key of :data:`~aligniform.integrations.common.METRIC_KEYS`);
            default ``recall_at_1_x_to_y``, which neither a collapsed (every
            pair aligned, uniformity 0) nor a scattered (uniform but
            unaligned) model can score well on.
        normalize: as in :func:`~aligniform.integrations.common.hypersphere_metrics`
            (so are ``t``, ``alpha``, ``max_pairs`` and ``seed``).

    Examples:
        >>> from aligniform.integrations.sentence_transformers import HypersphereEvaluator
        >>> evaluator = HypersphereEvaluator(["a cat sits", "the sea"], ["a kitten sits", "the ocean"])
        >>> evaluator(model)["uniformity"]  # doctest: +SKIP
        -1.07...
    """

    def __init__(
        self,
        sentences1: Sequence[str],
        sentences2: Sequence[str],
        labels: Sequence[int] | Sequence[str] | np.ndarray | torch.Tensor | None = None,
        *,
        batch_size: int = 32,
        name: str = "",
        primary_metric: str = "recall_at_1_x_to_y",
        normalize: bool = True,
        t: float = 2.0,
        alpha: float = 2.0,
        max_pairs: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        for argument, texts in (("sentences1", sentences1), ("sentences2", sentences2)):  # not `name`: a parameter
            # A string is a sequence too: list("a cat") would be five one-letter sentences.
            if isinstance(texts, (str, bytes)) or not isinstance(texts, Iterable):
                raise TypeError(f"`{argument}` must be a list of sentences, got {type(texts).__name__} {texts!r:.60}")
        self.sentences1, self.sentences2 = list(sentences1), list(sentences2)
        if len(self.sentences1) != len(self.sentences2) or len(self.sentences1) < 2:
            raise ValueError(
                f"sentences1 and sentences2 must be two equally long lists of at least 2 sentences (one pair per "
                f"row), got {len(self.sentences1)} and {len(self.sentences2)}"
            )
        if not all(isinstance(text, str) for text in self.sentences1 + self.sentences2):
            raise ValueError("sentences1 and sentences2 must hold strings")
        # Class names are mapped to ids (sorted names); both give the same tolerance and mean classifier.
        self.labels = None if labels is None else class_ids(labels, len(self.sentences1))
        if primary_metric not in METRIC_KEYS:
            raise ValueError(f"primary_metric must be one of {', '.join(METRIC_KEYS)}, got {primary_metric!r}")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.name = str(name)
        self.primary_metric = primary_metric
        self.greater_is_better = primary_metric in HIGHER_IS_BETTER
        self.options = MeasureOptions(normalize, t, alpha, max_pairs, seed)

    def __call__(
        self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:
        """The metrics of ``model``'s embeddings of the pairs (``output_path``, ``epoch``, ``steps`` as the API's)."""
        x, y = self.embeddings(model)
        values = self.options.metrics(x, y, self.labels)
        metrics = self.prefix_name_to_metrics(values, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics

    def embeddings(self, model: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Both sides' embeddings as ``model.encode`` gives them (float, on the CPU), the model's mode restored."""
        with preserved_training_state(model, self.options.seed):
            x, y = (
                model.encode(texts, batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=False)
                for texts in (self.sentences1, self.sentences2)
            )
        return x.detach().float().cpu(), y.detach().float().cpu()

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "normalize": self.options.normalize,
            "t": self.options.t,
            "alpha": self.options.alpha,
            "max_pairs": self.options.max_pairs,
        }


class ObjectiveLoss(nn.Module):
    """An :class:`aligniform.Objective` as a sentence-transformers loss on (anchor, positive) pairs.

    The two text columns are embedded by ``model`` (its ``sentence_embedding``),
    L2-normalised (``normalize``), and the objective is applied to them as
    ``objective(anchors, positives)``: every spec of
    :meth:`aligniform.Objective.parse` works, e.g. ``"align(alpha=2) +
    uniform(t=2)"`` (Wang & Isola), ``"contrastive(tau=0.05)"`` (SimCSE's
    InfoNCE, both directions), ``"hard_contrastive(tau=0.05, alpha=1)"``.
    The other in-batch rows are the negatives, so larger batches help the
    contrastive family and uniformity. Labels, if the dataset has a label
    column, are ignored.

    ``forward`` returns each term's weighted value as a dict (``{"align": ...,
    "uniform": ...}``, keyed as :attr:`aligniform.Objective.last_terms`), the form
    ``SentenceTransformerTrainer`` sums into the loss and logs term by term
    beside ``loss`` (averaged over the logging window, ``eval_``-prefixed at
    evaluation). A learnt argument's current value (a learnt ``tau``) is not a
    term of the sum, so it is not among them: read it from
    ``loss.objective.learned_values()``.

    Args:
        model: the ``SentenceTransformer`` being trained.
        spec: an objective spec, or an :class:`~aligniform.Objective`.
        normalize: L2-normalise the embeddings first (the objectives are
            defined on the sphere).

    Examples:
        >>> from aligniform.integrations.sentence_transformers import ObjectiveLoss
        >>> loss = ObjectiveLoss(model, "align(alpha=2) + uniform(t=2)")  # doctest: +SKIP
        >>> SentenceTransformerTrainer(model=model, train_dataset=pairs, loss=loss).train()  # doctest: +SKIP
    """

    def __init__(
        self, model: nn.Module, spec: str | Objective = "align(alpha=2) + uniform(t=2)", normalize: bool = True
    ) -> None:
        super().__init__()
        self.model = model
        self.objective = spec if isinstance(spec, Objective) else Objective.parse(spec)
        self.normalize = bool(normalize)
        self._last_values: dict[str, torch.Tensor] = {}

    def forward(
        self, sentence_features: Iterable[dict[str, torch.Tensor]], labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Each term's weighted value for a batch of (anchor, positive) pairs; their sum is the objective."""
        features = list(sentence_features)
        if len(features) != 2:
            raise ValueError(
                f"{type(self).__name__} trains on (anchor, positive) pairs: a dataset of two text columns, "
                f"got {len(features)} column(s)"
            )
        x, y = (self.model(feature)["sentence_embedding"] for feature in features)
        if self.normalize:
            x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
        # Term by term rather than objective(x, y): the trainer needs each weighted term as a tensor with its graph.
        values = {key: term(x, y) for key, term in zip(self.objective.keys, self.objective.terms)}
        self._last_values = {key: value.detach() for key, value in values.items()}  # floats only when read
        return {key: term.weight * values[key] for key, term in zip(self.objective.keys, self.objective.terms)}

    @property
    def last_terms(self) -> dict[str, float]:
        """Each term's unweighted value at the last batch (``align``, ``uniform``, ...)."""
        return {key: float(value) for key, value in self._last_values.items()}

    def get_config_dict(self) -> dict[str, Any]:
        return {"spec": str(self.objective), "normalize": self.normalize}

    @property
    def citation(self) -> str:
        return _CITATION


class AlignUniformLoss(ObjectiveLoss):
    """Wang & Isola's loss: ``align_weight * align(alpha) + uniform_weight * uniform(t)`` on (anchor, positive) pairs.

    The uniformity term is the mean over the two columns, each over its
    in-batch pairs (:class:`aligniform.UniformLoss`).

    Examples:
        >>> from aligniform.integrations.sentence_transformers import AlignUniformLoss
        >>> AlignUniformLoss(model, uniform_weight=0.5).get_config_dict()  # doctest: +SKIP
        {'spec': 'align(alpha=2) + 0.5*uniform(t=2)', 'normalize': True}
    """

    def __init__(
        self,
        model: nn.Module,
        alpha: float = 2.0,
        t: float = 2.0,
        align_weight: float = 1.0,
        uniform_weight: float = 1.0,
    ) -> None:
        weights = [check_positive(align_weight, "align_weight"), check_positive(uniform_weight, "uniform_weight")]
        alpha, t = check_positive(alpha, "alpha"), check_positive(t, "t")
        super().__init__(model, f"{weights[0]!r}*align(alpha={alpha!r}) + {weights[1]!r}*uniform(t={t!r})")
