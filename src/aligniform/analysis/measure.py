"""Measuring an :class:`EmbeddingSet`: alignment, uniformity, tolerance, mean classifier, rank, row norms.

Every metric comes from :mod:`aligniform.metrics`; this module decides which
ones apply (``y`` present? labels of two classes?), checks the rows are on the
sphere, and records in ``notes`` how each number was computed or why it was skipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import metrics
from .._validation import (
    NORM_TOLERANCE,
    as_tensor,
    check_labels,
    check_positive,
    check_positive_int,
    check_unit_norm,
)
from .embeddings import Array, EmbeddingSet

__all__ = ["MEAN_CLASSIFIER_HELD_OUT", "UNIT_NORM_TOLERANCE", "analyze_embeddings", "row_norm_statistics"]

UNIT_NORM_TOLERANCE = NORM_TOLERANCE
"""A row counts as unit-norm when ``| ||x_i|| - 1 | <= UNIT_NORM_TOLERANCE`` (the metrics' own tolerance)."""

MEAN_CLASSIFIER_HELD_OUT = 0.5
"""Fraction of the labelled rows the mean classifier is scored on; the class means come from the rest."""


def analyze_embeddings(
    emb: EmbeddingSet,
    normalize: bool = False,
    t: float = 2.0,
    alpha: float = 2.0,
    max_pairs: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure an :class:`EmbeddingSet`: alignment, uniformity, tolerance, mean classifier, rank, norms.

    Metrics (each from :mod:`aligniform.metrics`, on the L2-normalised rows
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
        ValueError: the rows are not unit-norm and ``normalize`` is false (the
            message says to pass ``normalize=True``, ``--normalize`` on the
            command line), or the values contain NaN/inf.

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
    x = _as_float_tensor(emb.x, "x")
    y = None if emb.y is None else _as_float_tensor(emb.y, "y")
    norms = row_norm_statistics(x)
    if normalize:
        x = F.normalize(x, dim=1)
        y = None if y is None else F.normalize(y, dim=1)
    else:
        _require_unit_norm(x, "x")
        if y is not None:
            _require_unit_norm(y, "y")
    labels = None if emb.labels is None else check_labels(emb.labels, emb.n).cpu()
    notes: dict[str, str] = {}
    result: dict[str, Any] = {
        "source": emb.source,
        "n": emb.n,
        "d": emb.d,
        "normalized": bool(normalize),
        "t": t,
        "alpha": alpha,
        "max_pairs": max_pairs,
    }
    result["alignment"] = _alignment(x, y, alpha, notes)
    result["uniformity"] = metrics.uniformity(x, t=t, max_pairs=max_pairs, seed=seed)
    notes["uniformity"] = _uniformity_note(emb.n, max_pairs, seed)
    result.update(_two_sided(x, y, t, max_pairs, seed, notes))
    result["tolerance"] = _tolerance(x, labels, notes)
    result.update(_mean_classifier(x, labels, seed, notes))
    result["effective_rank"] = metrics.effective_rank(x)
    notes["effective_rank"] = f"between 1 and min(n, d) = {min(emb.n, emb.d)}"
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
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or inf values")
    return tensor


def _require_unit_norm(x: torch.Tensor, name: str) -> None:
    """The core's unit-norm ValueError, plus the command-line spelling of the fix."""
    try:
        check_unit_norm(x, name)
    except ValueError as error:
        raise ValueError(f"{error} (on the command line: aligniform analyze ... --normalize)") from None


def _alignment(x: torch.Tensor, y: torch.Tensor | None, alpha: float, notes: dict[str, str]) -> float | None:
    if y is None:
        notes["alignment"] = "skipped: no positive partners y"
        return None
    notes["alignment"] = f"over {x.shape[0]} positive pairs (x_i, y_i)"
    return metrics.alignment(x, y, alpha=alpha)


RETRIEVAL_KS = (1, 5)
"""The k of the retrieval recalls ``analyze`` reports, in both directions (``recall_at_1_x_to_y``, ...)."""

RETRIEVAL_MIN_QUERIES = 1000
"""With ``max_pairs``, retrieval is scored on max(this, max_pairs // n) sampled queries (at most n)."""


def _two_sided(
    x: torch.Tensor, y: torch.Tensor | None, t: float, max_pairs: int | None, seed: int, notes: dict[str, str]
) -> dict[str, Any]:
    """Cross-modal numbers of pairs from two encoders: the y side's uniformity, the modality gap, retrieval."""
    directions = {"x_to_y": "x", "y_to_x": "y"}
    recall_keys = [f"recall_at_{k}_{direction}" for k in RETRIEVAL_KS for direction in directions]
    if y is None:
        for key in ["uniformity_y", "modality_gap", *recall_keys]:
            notes[key] = "skipped: no positive partners y"
        return dict.fromkeys(["uniformity_y", "modality_gap", *recall_keys])
    n = x.shape[0]
    result: dict[str, Any] = {
        "uniformity_y": metrics.uniformity(y, t=t, max_pairs=max_pairs, seed=seed),
        "modality_gap": metrics.modality_gap(x, y),
    }
    notes["uniformity_y"] = _uniformity_note(n, max_pairs, seed).replace("of x", "of y", 1)
    notes["modality_gap"] = "||mean x - mean y|| (Liang et al. 2022); near 0 when x and y come from one encoder"
    max_queries = None if max_pairs is None else max(RETRIEVAL_MIN_QUERIES, max_pairs // n)
    scored = "all" if max_queries is None or max_queries >= n else f"{max_queries} sampled (seed {seed})"
    for direction, side in directions.items():
        queries, keys = (x, y) if side == "x" else (y, x)
        recalls = metrics.retrieval_recalls(queries, keys, RETRIEVAL_KS, max_queries=max_queries, seed=seed)
        other = "y" if side == "x" else "x"
        for k, recall in recalls.items():
            result[f"recall_at_{k}_{direction}"] = recall
            notes[f"recall_at_{k}_{direction}"] = (
                f"fraction of {scored} rows of {side} whose partner is among the {k} most similar of the "
                f"{n} rows of {other}"
            )
    return result


def _uniformity_note(n: int, max_pairs: int | None, seed: int) -> str:
    pairs = n * (n - 1) // 2
    if max_pairs is None or max_pairs >= pairs:
        return f"of x, exact over all {pairs} pairs of rows"
    return f"of x, estimated from {max_pairs} sampled pairs (seed {seed}) of {pairs}"


def _tolerance(x: torch.Tensor, labels: torch.Tensor | None, notes: dict[str, str]) -> float | None:
    if labels is None:
        notes["tolerance"] = "skipped: no labels"
        return None
    labelled = labels[labels >= 0]
    if labelled.numel() == 0 or int(torch.unique(labelled, return_counts=True)[1].max()) < 2:
        notes["tolerance"] = "skipped: no class has two labelled rows"
        return None
    unlabelled = int((labels < 0).sum())
    notes["tolerance"] = "mean cosine over same-class pairs" + (
        f" ({unlabelled} unlabelled rows left out)" if unlabelled else ""
    )
    return metrics.tolerance(x, labels)


def _mean_classifier(x: torch.Tensor, labels: torch.Tensor | None, seed: int, notes: dict[str, str]) -> dict[str, Any]:
    skipped = {"mean_classifier_acc": None, "mean_classifier_fit_rows": None, "mean_classifier_test_rows": None}
    if labels is None:
        notes["mean_classifier_acc"] = "skipped: no labels"
        return skipped
    labelled = torch.nonzero(labels >= 0).flatten()
    if labelled.numel() < 2 or torch.unique(labels[labelled]).numel() < 2:
        notes["mean_classifier_acc"] = "skipped: needs labelled rows of at least two classes"
        return skipped
    fit_rows, test_rows = _stratified_halves(labels[labelled].numpy(), seed)
    fit, test = labelled[torch.from_numpy(fit_rows)], labelled[torch.from_numpy(test_rows)]
    accuracy = metrics.mean_classifier_accuracy(x[fit], labels[fit], x[test], labels[test])
    notes["mean_classifier_acc"] = (
        f"class means from a seeded (seed {seed}) class-stratified half of the labelled rows "
        f"({fit.numel()}), accuracy on the other half ({test.numel()})"
    )
    return {
        "mean_classifier_acc": accuracy,
        "mean_classifier_fit_rows": int(fit.numel()),
        "mean_classifier_test_rows": int(test.numel()),
    }


def _stratified_halves(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the fitting half and the scoring half, each class split in two (seeded)."""
    from ..data import train_val_split

    return train_val_split(labels, MEAN_CLASSIFIER_HELD_OUT, seed)
