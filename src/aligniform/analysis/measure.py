"""Measuring an :class:`EmbeddingSet`: every registered metric, plus the row norms and how each number was computed.

The metrics, which of them apply (``y`` present? labels of two classes?) and
the notes on how each was computed or why it was skipped all come from
:func:`aligniform.metric_registry.measure`; this module adds the source, the
options and the row norms of the embeddings as given.
"""

from __future__ import annotations

from typing import Any

import torch

from .._validation import NORM_TOLERANCE, as_tensor, check_finite, check_positive, check_positive_int
from ..metric_registry import MEAN_CLASSIFIER_HELD_OUT, measure
from .embeddings import Array, EmbeddingSet

__all__ = ["MEAN_CLASSIFIER_HELD_OUT", "UNIT_NORM_TOLERANCE", "analyze_embeddings", "row_norm_statistics"]

UNIT_NORM_TOLERANCE = NORM_TOLERANCE
"""A row counts as unit-norm when ``| ||x_i|| - 1 | <= UNIT_NORM_TOLERANCE`` (the metrics' own tolerance)."""


def analyze_embeddings(
    emb: EmbeddingSet,
    normalize: bool = False,
    t: float = 2.0,
    alpha: float = 2.0,
    max_pairs: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure an :class:`EmbeddingSet`: alignment, uniformity, tolerance, mean classifier, rank, norms.

    Metrics (every entry of :data:`aligniform.metric_registry.METRICS`, via
    :func:`~aligniform.metric_registry.measure`, on the L2-normalised rows
    when ``normalize`` is true):

    * ``alignment`` -- mean ||x_i - y_i||^alpha over the pairs (needs ``y``);
    * ``uniformity`` -- log mean exp(-t ||x_i - x_j||²) over distinct rows of
      ``x`` (exact, or from ``max_pairs`` sampled pairs);
    * ``tolerance`` -- mean x_iᵀx_j over same-class pairs (needs labels);
    * ``mean_classifier_acc`` -- Arora et al.'s mean classifier: class means
      from a seeded, class-stratified half of the labelled rows, accuracy on
      the other half (needs labels of two or more classes);
    * ``effective_rank`` of ``x``;
    * for pairs from two encoders (needs ``y``): ``uniformity_y`` (the other
      side's uniformity), ``modality_gap`` (||mean x - mean y||, Liang et al.
      2022; always present, ``None`` without ``y``) and retrieval recall@1/@5
      in both directions (``recall_at_1_x_to_y``, ``recall_at_5_y_to_x``, ...);
    * ``norm_min``, ``norm_mean``, ``norm_max``, ``unit_norm_fraction`` --
      row norms of ``x`` as given (before any normalisation).

    A metric that cannot be computed is ``None`` and ``notes`` says why.

    Args:
        emb: the embeddings.
        normalize: L2-normalise rows first. Without it, rows must already be
            unit-norm (the metrics are defined on the sphere).
        t: uniformity temperature.
        alpha: alignment exponent.
        max_pairs: estimate uniformity from this many sampled pairs (for
            large N; exact over all pairs by default).
        seed: seed of the uniformity pair sample and of the mean-classifier split.

    Returns:
        A JSON-serialisable dict: ``source``, ``n``, ``d``, ``normalized``,
        ``t``, ``alpha``, ``max_pairs``, the metrics above,
        ``mean_classifier_fit_rows``/``mean_classifier_test_rows`` and ``notes``
        (metric -> explanation).

    Raises:
        OptionError: the rows are not unit-norm and ``normalize`` is false (the
            message names the option `normalize`).
        ValueError: the values contain NaN/inf.

    Examples:
        >>> import numpy as np
        >>> z = np.eye(4)
        >>> result = analyze_embeddings(EmbeddingSet(z, z[[1, 2, 3, 0]]))
        >>> round(result["alignment"], 6), result["unit_norm_fraction"]
        (2.0, 1.0)
    """
    if not isinstance(emb, EmbeddingSet):
        raise ValueError(f"emb must be an EmbeddingSet, got {type(emb).__name__}")
    t, alpha = check_positive(t, "t"), check_positive(alpha, "alpha")
    max_pairs = None if max_pairs is None else check_positive_int(max_pairs, "max_pairs")
    # Norms of the rows as given, before measure() normalises them.
    norms = row_norm_statistics(_as_float_tensor(emb.x, "x"))
    notes: dict[str, str] = {}
    details: dict[str, Any] = {}
    values = measure(
        emb.x,
        emb.y,
        emb.labels,
        normalize=normalize,
        t=t,
        alpha=alpha,
        max_pairs=max_pairs,
        seed=seed,
        notes=notes,
        details=details,
    )
    result: dict[str, Any] = {
        "source": emb.source,
        "n": emb.n,
        "d": emb.d,
        "normalized": bool(normalize),
        "t": t,
        "alpha": alpha,
        "max_pairs": max_pairs,
    }
    for key, value in values.items():
        result[key] = value
        if key == "mean_classifier_acc":
            result["mean_classifier_fit_rows"] = details.get("mean_classifier_fit_rows")
            result["mean_classifier_test_rows"] = details.get("mean_classifier_test_rows")
    result.update(norms)
    result["notes"] = notes
    return result


def row_norm_statistics(x: torch.Tensor) -> dict[str, float]:
    """Min, mean and max L2 row norm of ``x`` and the fraction of rows within 1e-3 of unit norm.

    Examples:
        >>> stats = row_norm_statistics(torch.tensor([[1.0, 0.0], [3.0, 4.0]]))
        >>> stats["norm_max"], stats["unit_norm_fraction"]
        (5.0, 0.5)
    """
    with torch.no_grad():
        norms = torch.cat([torch.linalg.vector_norm(chunk.double(), dim=1) for chunk in x.split(65536)])
    return {
        "norm_min": float(norms.min()),
        "norm_mean": float(norms.mean()),
        "norm_max": float(norms.max()),
        "unit_norm_fraction": float(((norms - 1).abs() <= UNIT_NORM_TOLERANCE).double().mean()),
    }


def _as_float_tensor(value: Array, name: str) -> torch.Tensor:
    tensor = as_tensor(value, name).detach()
    check_finite(tensor, name)
    return tensor
