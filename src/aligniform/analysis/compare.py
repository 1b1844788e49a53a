"""Comparing embeddings side by side, with bootstrap intervals: the backend of ``aligniform compare``.

Every input ``aligniform analyze`` accepts (an ``.npz``, a folder of ``.npy``,
a checkpoint or run folder, a sentence-transformers model embedding a pairs
file) becomes one row: alignment, uniformity, tolerance, effective rank,
retrieval recall@1 and the modality gap, each its estimate on all the data
(:func:`aligniform.metric_registry.measure`) and a percentile bootstrap
interval (:mod:`aligniform.stats`). With a pairs file carrying a score column
and ``min_score``, sentence models follow SimCSE's protocol (Gao et al. 2021):
alignment over the pairs scored at least ``min_score``, uniformity over every
sentence of the file. The table, the page and the files are in
:mod:`.compare_page`; the alignment-uniformity plane in :mod:`aligniform.plots.compare`.

How each interval is drawn: the rows (pairs; for SimCSE inputs the sentences
for the one-sided metrics) are resampled with replacement; alignment, recall
and the modality gap are recomputed from the resampled pairs (each query still
ranks all the keys); uniformity and tolerance are taken over the pairs of
resampled rows that are two different rows (a row drawn twice is not a pair at
distance 0, which would bias uniformity towards collapse); the effective rank
from at most :data:`RANK_RESAMPLES` of the resamples (one eigen-decomposition
each). Each interval is the percentile interval of the resampled values shifted by
the bootstrap's estimate of the bias (their mean minus the estimate), so that
biased statistics (a norm, an entropy) get an interval around their estimate.
The uniformity interval needs an ``n x n`` kernel and is skipped
above :data:`BOOTSTRAP_MAX_ROWS` rows (the estimate is still exact).

Examples:
    >>> import numpy as np
    >>> from aligniform.analysis import EmbeddingSet
    >>> from aligniform.analysis.compare import compare_embeddings
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(100, 8))
    >>> near, far = x + 0.1 * rng.normal(size=(100, 8)), rng.normal(size=(100, 8))
    >>> sets = {"near": EmbeddingSet(x, near), "far": EmbeddingSet(x, far)}
    >>> result = compare_embeddings(sets, normalize=True, resamples=50)
    >>> row = result["inputs"][0]["metrics"]["alignment"]
    >>> row["low"] <= row["estimate"] <= row["high"] < result["inputs"][1]["metrics"]["alignment"]["low"]
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import metrics
from .._validation import check_positive, check_positive_int
from ..errors import OptionError
from ..metric_registry import measure
from ..stats import CONFIDENCE, bootstrap_indices, percentile_interval
from .embeddings import Array, EmbeddingSet

__all__ = [
    "BOOTSTRAP_MAX_ROWS",
    "COMPARE_METRICS",
    "DEFAULT_RESAMPLES",
    "RANK_RESAMPLES",
    "CompareSet",
    "compare_embeddings",
]

COMPARE_METRICS = ("alignment", "uniformity", "tolerance", "effective_rank", "recall_at_1_x_to_y", "modality_gap")
"""The metrics of the comparison table, in column order (keys of :data:`aligniform.metric_registry.METRICS`)."""

DEFAULT_RESAMPLES = 1000
"""Bootstrap resamples of each input (the intervals' percentiles need several hundred)."""

RANK_RESAMPLES = 200
"""At most this many of the resamples give the effective rank's interval (one d x d eigen-decomposition each)."""

BOOTSTRAP_MAX_ROWS = 4096
"""Above this many rows the uniformity interval is skipped (it needs an n x n kernel in memory)."""

# Resamples handled at once by the kernel products (bounds memory to CHUNK x rows floats).
_CHUNK = 100


@dataclass
class CompareSet:
    """One input of a comparison: its pairs and, optionally, other rows for the one-sided metrics.

    Attributes:
        embeddings: the positive pairs (``x``, ``y``) and labels, as :func:`~aligniform.analysis.load_embeddings` gives.
        points: rows for uniformity, tolerance and effective rank (SimCSE: every sentence of the file);
            ``None``: the rows of ``x``. ``labels`` then belong to ``points``.
    """

    embeddings: EmbeddingSet
    points: Array | None = None


def compare_embeddings(
    sets: Mapping[str, EmbeddingSet | CompareSet],
    *,
    normalize: bool = False,
    t: float = 2.0,
    alpha: float = 2.0,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """Measure every input and bootstrap an interval for each metric of :data:`COMPARE_METRICS`.

    Args:
        sets: display name -> the input's embeddings, in table order.
        normalize: L2-normalise every row first; without it rows must be unit-norm.
        t: uniformity temperature.
        alpha: alignment exponent.
        resamples: bootstrap resamples per input.
        seed: seed of the resamples (and of :func:`~aligniform.metric_registry.measure`'s samples).
        confidence: level of the percentile intervals.

    Returns:
        A JSON-serialisable dict: the options, ``columns`` (:data:`COMPARE_METRICS`) and ``inputs``, one per
        set: ``name``, ``source``, ``n_pairs``, ``n_points``, ``d``, ``metrics`` (metric -> ``estimate``,
        ``low``, ``high``; ``None`` when it does not apply), ``all_metrics`` (every registered metric's
        estimate) and ``notes`` (how each was computed or why skipped, and how its interval was drawn).

    Raises:
        OptionError: no inputs, a bad option, or rows that are not unit-norm without ``normalize``.
    """
    if not sets:
        raise OptionError("give at least one input to compare")
    t, alpha = check_positive(t, "t"), check_positive(alpha, "alpha")
    resamples = check_positive_int(resamples, "resamples")
    if not 0 < confidence < 1:
        raise OptionError(f"`confidence` must be in (0, 1), got {confidence!r}")
    rows = [
        _compare_one(name, value if isinstance(value, CompareSet) else CompareSet(value), normalize, t, alpha,
                     resamples, seed, confidence)
        for name, value in sets.items()
    ]  # fmt: skip
    return {
        "columns": list(COMPARE_METRICS),
        "normalized": bool(normalize),
        "t": t,
        "alpha": alpha,
        "resamples": resamples,
        "seed": seed,
        "confidence": confidence,
        "inputs": rows,
    }


def _compare_one(
    name: str, item: CompareSet, normalize: bool, t: float, alpha: float, resamples: int, seed: int, level: float
) -> dict[str, Any]:
    emb = item.embeddings
    notes: dict[str, str] = {}
    values = measure(
        emb.x, emb.y, emb.labels, points=item.points, normalize=normalize, t=t, alpha=alpha, seed=seed, notes=notes
    )
    x = _unit_rows(emb.x, normalize)
    y = None if emb.y is None else _unit_rows(emb.y, normalize)
    points = x if item.points is None else _unit_rows(item.points, normalize)
    labels = None if emb.labels is None else np.asarray(torch.as_tensor(emb.labels).cpu().numpy(), dtype=np.int64)
    pair_draws = bootstrap_indices(x.shape[0], resamples, seed)
    point_draws = pair_draws if item.points is None else bootstrap_indices(points.shape[0], resamples, seed + 1)
    samples: dict[str, np.ndarray | str] = {}
    if y is not None:
        distances = np.linalg.norm(x - y, axis=1) ** alpha
        samples["alignment"] = distances[pair_draws].mean(axis=1)
        samples["recall_at_1_x_to_y"] = _recall_credits(x, y)[pair_draws].mean(axis=1)
        pair_counts = _counts(pair_draws, x.shape[0])
        samples["modality_gap"] = np.linalg.norm((pair_counts @ x - pair_counts @ y) / x.shape[0], axis=1)
    point_counts = _counts(point_draws, points.shape[0])
    if points.shape[0] > BOOTSTRAP_MAX_ROWS:
        samples["uniformity"] = f"more than {BOOTSTRAP_MAX_ROWS} rows ({points.shape[0]})"
    else:
        samples["uniformity"] = _uniformity_samples(points, point_counts, t)
    if labels is not None and values.get("tolerance") is not None:
        samples["tolerance"] = _tolerance_samples(points, labels, point_counts)
    samples["effective_rank"] = _rank_samples(points, point_counts[:RANK_RESAMPLES])
    table: dict[str, dict[str, float] | None] = {}
    for metric in COMPARE_METRICS:
        estimate = values.get(metric)
        if estimate is None:
            table[metric] = None
            continue
        drawn = samples.get(metric)
        if isinstance(drawn, np.ndarray):
            finite = drawn[np.isfinite(drawn)]
            # Shifted by the bootstrap's estimate of the bias (the resamples' mean minus the estimate): a norm
            # (the gap) or an entropy (the rank) of resampled rows is biased, and the plain percentile interval
            # of those can miss the estimate altogether.
            bias = float(finite.mean()) - float(estimate) if finite.size else 0.0
            low, high = (bound - bias for bound in percentile_interval(finite, level))
            low, high = _clip(metric, low), _clip(metric, high)
            used = min(resamples, RANK_RESAMPLES) if metric == "effective_rank" else resamples
            notes[f"{metric}_interval"] = (
                f"{level:.0%} percentile interval of {used} bootstrap resamples, bias-corrected by {-bias:+.3g}"
            )
        else:
            low = high = None  # type: ignore[assignment]
            notes[f"{metric}_interval"] = f"no interval: {drawn}" if drawn else "no interval"
        table[metric] = {"estimate": float(estimate), "low": low, "high": high}
    return {
        "name": name,
        "source": emb.source,
        "n_pairs": emb.n,
        "n_points": int(points.shape[0]),
        "d": emb.d,
        "metrics": table,
        "all_metrics": values,
        "notes": notes,
    }


def _clip(metric: str, value: float) -> float:
    """Keep a shifted interval end inside the metric's range (recall in [0, 1], the gap and the rank >= 0)."""
    if metric.startswith("recall_at_"):
        return min(max(value, 0.0), 1.0)
    return max(value, 0.0) if metric in ("modality_gap", "effective_rank", "alignment") else value


def _unit_rows(value: Array, normalize: bool) -> np.ndarray:
    """Rows as float64 numpy, L2-normalised when asked (measure() has already refused non-unit rows otherwise)."""
    tensor = torch.as_tensor(value).detach().cpu().double()
    return (F.normalize(tensor, dim=1) if normalize else tensor).numpy()


def _counts(draws: np.ndarray, n: int) -> np.ndarray:
    """How often each row appears in each resample: ``(resamples, n)``."""
    offsets = draws + n * np.arange(draws.shape[0])[:, None]
    return np.bincount(offsets.ravel(), minlength=draws.size).reshape(draws.shape[0], n).astype(np.float64)


def _recall_credits(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each query's recall@1 credit (ties split in expectation, as :func:`aligniform.metrics.retrieval_recall`)."""
    credits = np.empty(x.shape[0])
    block = max(1, metrics.RETRIEVAL_BLOCK // x.shape[0])
    for start in range(0, x.shape[0], block):
        similarity = x[start : start + block] @ y.T
        own = similarity[np.arange(similarity.shape[0]), np.arange(start, start + similarity.shape[0])][:, None]
        greater = (similarity > own).sum(axis=1)
        ties = (similarity == own).sum(axis=1) - 1
        credits[start : start + block] = np.clip((1 - greater) / (ties + 1), 0, 1)
    return credits


def _uniformity_samples(points: np.ndarray, counts: np.ndarray, t: float) -> np.ndarray:
    """Per resample: log of the mean of exp(-t ||z_i - z_j||²) over pairs of two different drawn rows."""
    logits = -t * np.clip(2 - 2 * (points @ points.T), 0, None)
    np.fill_diagonal(logits, -np.inf)  # a row is not a pair with itself, nor with its own copies
    shift = logits.max()  # the largest off-diagonal term: exp() of the rest cannot overflow
    kernel = np.exp(logits - shift)
    totals = np.empty(counts.shape[0])
    for start in range(0, counts.shape[0], _CHUNK):
        chunk = counts[start : start + _CHUNK]
        totals[start : start + _CHUNK] = ((chunk @ kernel) * chunk).sum(axis=1)
    pairs = counts.sum(axis=1) ** 2 - (counts**2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(totals / pairs) + shift


def _tolerance_samples(points: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per class, as :func:`aligniform.metrics.tolerance`: ||sum c_i z_i||² - sum c_i² ||z_i||² over distinct pairs."""
    totals = np.zeros(counts.shape[0])
    pairs = np.zeros(counts.shape[0])
    squared_norms = (points**2).sum(axis=1)
    for label in np.unique(labels[labels >= 0]):
        members = labels == label
        weights = counts[:, members]
        sums = weights @ points[members]
        totals += (sums**2).sum(axis=1) - (weights**2) @ squared_norms[members]
        pairs += weights.sum(axis=1) ** 2 - (weights**2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return totals / pairs


def _rank_samples(points: np.ndarray, counts: np.ndarray) -> np.ndarray:
    ranks = np.empty(counts.shape[0])
    for index, weights in enumerate(counts):
        gram = (points * weights[:, None]).T @ points
        singular = np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0, None))
        p = singular / singular.sum()
        p = p[p > 0]
        ranks[index] = np.exp(-(p * np.log(p)).sum())
    return ranks
