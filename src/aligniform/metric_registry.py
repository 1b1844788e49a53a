"""The one registry of representation metrics, and :func:`measure`, which computes every metric whose needs are met.

Each metric is one :class:`MetricSpec` in :data:`METRICS`: its result key, its
label and reading hint for tables, whether lower or higher is better, what it
needs (positive partners ``y``, labels) and how it is computed from
:mod:`aligniform.metrics`. Everything that measures embeddings loops over this
table: :func:`aligniform.evaluate.evaluate_encoder`,
:func:`aligniform.analysis.analyze_embeddings` (``aligniform analyze``), the
integrations (:func:`aligniform.integrations.hypersphere_metrics`) and the
HTML report's "best value" highlighting. Adding a metric means adding one
entry here, its test and its docs.

Examples:
    >>> import torch
    >>> from aligniform.metric_registry import measure, metric_spec
    >>> z = torch.eye(4)
    >>> values = measure(z, z[[1, 2, 3, 0]])
    >>> round(values["alignment"], 6), values["tolerance"]  # no labels: tolerance is skipped
    (2.0, None)
    >>> metric_spec("alignment").direction
    'lower'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from . import metrics
from ._validation import (
    ArrayLike,
    as_tensor,
    check_finite,
    check_labels,
    check_positive,
    check_positive_int,
    check_unit_norm,
)
from .errors import OptionError

__all__ = [
    "METRICS",
    "MEAN_CLASSIFIER_HELD_OUT",
    "RETRIEVAL_KS",
    "RETRIEVAL_MIN_QUERIES",
    "MetricSpec",
    "higher_is_better",
    "measure",
    "metric_names",
    "metric_spec",
]

MEAN_CLASSIFIER_HELD_OUT = 0.5
"""Fraction of the labelled rows the mean classifier is scored on; the class means come from the rest."""

RETRIEVAL_KS = (1, 5)
"""The k of the retrieval recalls, in both directions (``recall_at_1_x_to_y``, ...)."""

RETRIEVAL_MIN_QUERIES = 1000
"""With ``max_pairs``, retrieval is scored on max(this, max_pairs // n) sampled queries (at most n)."""


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its key, how tables show it, which way is better, what it needs, how it is computed.

    Attributes:
        name: the result key (``results.json``, ``analyze --json``, the integrations' logged names).
        label: table label; ``{alpha}`` and ``{t}`` are filled in from the options.
        hint: how to read the value, shown next to it in ``aligniform analyze``'s table.
        direction: ``"lower"`` or ``"higher"`` is better (checkpoint selection in the integrations).
        ranked: whether tables across runs highlight a best value. False where the direction is a trade-off
            (tolerance against uniformity, Wang & Liu 2021) or a diagnostic rather than a goal.
        needs_pairs: needs the positive partners ``y``.
        needs_labels: needs class labels.
        digits: decimals in ``aligniform analyze``'s table.
    """

    name: str
    label: str
    hint: str
    direction: Literal["lower", "higher"]
    compute: Callable[[_Inputs], float] = field(repr=False)
    ranked: bool = False
    needs_pairs: bool = False
    needs_labels: bool = False
    digits: int = 4
    skip: Callable[[_Inputs], str | None] = field(default=lambda inputs: None, repr=False)
    note: Callable[[_Inputs], str] = field(default=lambda inputs: "", repr=False)

    def reason_skipped(self, inputs: _Inputs) -> str | None:
        """Why this metric cannot be computed from ``inputs``, or None when it can."""
        if self.needs_pairs and inputs.y is None:
            return "skipped: no positive partners y"
        if self.needs_labels and inputs.labels is None:
            return "skipped: no labels"
        return self.skip(inputs)


@dataclass
class _Inputs:
    """What :func:`measure` measures, with the shared work (retrieval, the mean-classifier split) done once."""

    x: torch.Tensor
    y: torch.Tensor | None
    labels: torch.Tensor | None
    points: torch.Tensor
    t: float
    alpha: float
    max_pairs: int | None
    seed: int
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def partners(self) -> torch.Tensor:
        """``y``, which a metric that ``needs_pairs`` may take as given."""
        assert self.y is not None
        return self.y

    @property
    def classes(self) -> torch.Tensor:
        """``labels``, which a metric that ``needs_labels`` may take as given."""
        assert self.labels is not None
        return self.labels

    @property
    def n(self) -> int:
        return int(self.points.shape[0])

    @cached_property
    def max_queries(self) -> int | None:
        return None if self.max_pairs is None else max(RETRIEVAL_MIN_QUERIES, self.max_pairs // self.x.shape[0])

    @cached_property
    def recalls(self) -> dict[str, dict[int, float]]:
        assert self.y is not None
        return {
            "x_to_y": metrics.retrieval_recalls(
                self.x, self.y, RETRIEVAL_KS, max_queries=self.max_queries, seed=self.seed
            ),
            "y_to_x": metrics.retrieval_recalls(
                self.y, self.x, RETRIEVAL_KS, max_queries=self.max_queries, seed=self.seed
            ),
        }

    def uniformity_note(self, side: str) -> str:
        n = self.n if side == "x" else int(self.x.shape[0])
        pairs = n * (n - 1) // 2
        if self.max_pairs is None or self.max_pairs >= pairs:
            return f"of {side}, exact over all {pairs} pairs of rows"
        return f"of {side}, estimated from {self.max_pairs} sampled pairs (seed {self.seed}) of {pairs}"


def _tolerance_skip(inputs: _Inputs) -> str | None:
    assert inputs.labels is not None
    labelled = inputs.labels[inputs.labels >= 0]
    if labelled.numel() == 0 or int(torch.unique(labelled, return_counts=True)[1].max()) < 2:
        return "skipped: no class has two labelled rows"
    return None


def _tolerance_note(inputs: _Inputs) -> str:
    assert inputs.labels is not None
    unlabelled = int((inputs.labels < 0).sum())
    return "mean cosine over same-class pairs" + (f" ({unlabelled} unlabelled rows left out)" if unlabelled else "")


def _mean_classifier_skip(inputs: _Inputs) -> str | None:
    assert inputs.labels is not None
    labelled = inputs.labels[inputs.labels >= 0]
    if labelled.numel() < 2 or torch.unique(labelled).numel() < 2:
        return "skipped: needs labelled rows of at least two classes"
    return None


def _mean_classifier(inputs: _Inputs) -> float:
    """Class means from a seeded, class-stratified half of the labelled rows; accuracy on the other half."""
    from .data import train_val_split  # the data package imports torchvision: only when labels are there

    labels = inputs.labels
    assert labels is not None
    labels = labels.cpu()
    labelled = torch.nonzero(labels >= 0).flatten()
    fit_rows, test_rows = train_val_split(labels[labelled].numpy(), MEAN_CLASSIFIER_HELD_OUT, inputs.seed)
    fit, test = labelled[torch.from_numpy(fit_rows)], labelled[torch.from_numpy(test_rows)]
    z = inputs.points
    inputs.details["mean_classifier_fit_rows"] = int(fit.numel())
    inputs.details["mean_classifier_test_rows"] = int(test.numel())
    return metrics.mean_classifier_accuracy(z[fit.to(z.device)], labels[fit], z[test.to(z.device)], labels[test])


def _mean_classifier_note(inputs: _Inputs) -> str:
    return (
        f"class means from a seeded (seed {inputs.seed}) class-stratified half of the labelled rows "
        f"({inputs.details['mean_classifier_fit_rows']}), accuracy on the other half "
        f"({inputs.details['mean_classifier_test_rows']})"
    )


def _uniformity_spec(side: str, key: str, label: str, hint: str) -> MetricSpec:
    """Uniformity of the rows x (ranked across runs) or of their partners y (which need pairs)."""

    def compute(inputs: _Inputs) -> float:
        rows = inputs.points if side == "x" else inputs.partners
        return metrics.uniformity(rows, t=inputs.t, max_pairs=inputs.max_pairs, seed=inputs.seed)

    return MetricSpec(
        key,
        label,
        hint,
        "lower",
        compute,
        ranked=side == "x",
        needs_pairs=side == "y",
        note=lambda inputs: inputs.uniformity_note(side),
    )


def _recall_spec(k: int, direction: str, hint: str) -> MetricSpec:
    side, other = ("x", "y") if direction == "x_to_y" else ("y", "x")

    def note(inputs: _Inputs) -> str:
        q, n = inputs.max_queries, int(inputs.x.shape[0])
        scored = "all" if q is None or q >= n else f"{q} sampled (seed {inputs.seed})"
        return (
            f"fraction of {scored} rows of {side} whose partner is among the {k} most similar of the "
            f"{n} rows of {other}"
        )

    return MetricSpec(
        f"recall_at_{k}_{direction}",
        f"recall@{k} {side} -> {other}",
        hint,
        "higher",
        lambda inputs: inputs.recalls[direction][k],
        needs_pairs=True,
        note=note,
    )


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "alignment",
        "alignment (alpha={alpha:g})",
        "lower is better (Wang & Isola 2020)",
        "lower",
        lambda inputs: metrics.alignment(inputs.x, inputs.partners, alpha=inputs.alpha),
        ranked=True,
        needs_pairs=True,
        note=lambda inputs: f"over {inputs.x.shape[0]} positive pairs (x_i, y_i)",
    ),
    _uniformity_spec("x", "uniformity", "uniformity (t={t:g})", "lower is better; 0 = collapsed (Wang & Isola 2020)"),
    MetricSpec(
        "tolerance",
        "tolerance",
        "higher = same-class rows closer (Wang & Liu 2021)",
        "higher",
        lambda inputs: metrics.tolerance(inputs.points, inputs.classes),
        needs_labels=True,
        skip=_tolerance_skip,
        note=_tolerance_note,
    ),
    MetricSpec(
        "mean_classifier_acc",
        "mean-classifier accuracy",
        "higher is better (Arora et al. 2019)",
        "higher",
        _mean_classifier,
        ranked=True,
        needs_labels=True,
        skip=_mean_classifier_skip,
        note=_mean_classifier_note,
    ),
    MetricSpec(
        "effective_rank",
        "effective rank",
        "higher = more directions used (RankMe)",
        "higher",
        lambda inputs: metrics.effective_rank(inputs.points),
        digits=2,
        note=lambda inputs: f"between 1 and min(n, d) = {min(inputs.n, int(inputs.points.shape[1]))}",
    ),
    _uniformity_spec("y", "uniformity_y", "y-side uniformity (t={t:g})", "of the partners y; lower is better"),
    MetricSpec(
        "modality_gap",
        "modality gap",
        "||mean x - mean y||; 0 = one distribution (Liang et al. 2022)",
        "lower",
        lambda inputs: metrics.modality_gap(inputs.x, inputs.partners),
        needs_pairs=True,
        note=lambda inputs: "||mean x - mean y|| (Liang et al. 2022); near 0 when x and y come from one encoder",
    ),
    _recall_spec(1, "x_to_y", "partner retrieved first; higher is better"),
    _recall_spec(5, "x_to_y", "partner among the 5 nearest"),
    _recall_spec(1, "y_to_x", ""),
    _recall_spec(5, "y_to_x", ""),
)
"""Every metric :func:`measure` knows, in the order tables show them."""

_BY_NAME = {spec.name: spec for spec in METRICS}


def metric_names() -> tuple[str, ...]:
    """The keys of every registered metric, in table order.

    Examples:
        >>> metric_names()[:3]
        ('alignment', 'uniformity', 'tolerance')
    """
    return tuple(_BY_NAME)


def metric_spec(name: str) -> MetricSpec:
    """The :class:`MetricSpec` of a metric key; raises :class:`~aligniform.errors.OptionError` on an unknown one.

    Examples:
        >>> metric_spec("tolerance").needs_labels
        True
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise OptionError(f"unknown metric {name!r}; the metrics are {', '.join(_BY_NAME)}") from None


def higher_is_better(name: str) -> bool:
    """Whether a larger value of the metric ``name`` is better.

    Examples:
        >>> higher_is_better("recall_at_1_x_to_y"), higher_is_better("modality_gap")
        (True, False)
    """
    return metric_spec(name).direction == "higher"


def _rows(value: ArrayLike, name: str, normalize: bool) -> torch.Tensor:
    tensor = as_tensor(value, name).detach()
    check_finite(tensor, name)
    if normalize:
        return F.normalize(tensor, dim=1)
    try:
        check_unit_norm(tensor, name)
    except ValueError as error:
        raise OptionError(str(error)) from None  # its message names the option `normalize`
    return tensor


def measure(
    x: ArrayLike,
    y: ArrayLike | None = None,
    labels: ArrayLike | None = None,
    *,
    points: ArrayLike | None = None,
    names: Sequence[str] | None = None,
    normalize: bool = False,
    t: float = 2.0,
    alpha: float = 2.0,
    max_pairs: int | None = None,
    seed: int = 0,
    notes: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, float | None]:
    """Every registered metric (:data:`METRICS`) of positive pairs ``(x_i, y_i)`` whose needs are met.

    The pair metrics (alignment, retrieval, the modality gap, ``uniformity_y``)
    use ``x`` and ``y``; the one-sided metrics (uniformity, tolerance, the mean
    classifier, effective rank) use ``points``, which defaults to ``x``. The
    evaluation protocol passes the clean (eval-transformed) images as
    ``points`` and two augmented views as ``x``, ``y``; the integrations and
    ``aligniform analyze`` measure the views themselves.

    Args:
        x: ``(N, d)`` embeddings.
        y: ``(N, d)`` their positive partners (another view, the other tower), or ``None``.
        labels: ``(N,)`` integer classes of ``points`` (-1 = unlabelled), or ``None``.
        points: ``(M, d)`` rows of the one-sided metrics (default ``x``).
        names: the metrics wanted. Default: every metric, those whose needs
            are not met being ``None`` (the reason in ``notes``). A metric
            named here is always computed, and raises when it cannot be.
        normalize: L2-normalise every row first; without it rows must be unit-norm.
        t: uniformity temperature.
        alpha: alignment exponent.
        max_pairs: estimate uniformity from this many sampled pairs (and
            retrieval from correspondingly many queries); exact by default.
        seed: seed of those samples and of the mean classifier's split.
        notes: filled with ``{metric: how it was computed, or why skipped}``.
        details: filled with by-products (``mean_classifier_fit_rows``, ``mean_classifier_test_rows``).

    Returns:
        ``{metric: float or None}`` in the order of :data:`METRICS` (of ``names`` when given).

    Raises:
        OptionError: rows not unit-norm without ``normalize``, or an unknown name.
        ValueError: NaN/inf values, or a named metric that cannot be computed.

    Examples:
        >>> import numpy as np
        >>> z = np.eye(3)
        >>> measure(z, z, [0, 0, 1], names=("alignment", "tolerance"))
        {'alignment': 0.0, 'tolerance': 0.0}
    """
    t, alpha = check_positive(t, "t"), check_positive(alpha, "alpha")
    max_pairs = None if max_pairs is None else check_positive_int(max_pairs, "max_pairs")
    specs = METRICS if names is None else tuple(metric_spec(name) for name in names)
    x_rows = _rows(x, "x", normalize)
    y_rows = None if y is None else _rows(y, "y", normalize)
    point_rows = x_rows if points is None else _rows(points, "points", normalize)
    label_rows = None if labels is None else check_labels(_as_label_array(labels), point_rows.shape[0]).cpu()
    inputs = _Inputs(x_rows, y_rows, label_rows, point_rows, t, alpha, max_pairs, seed)
    notes = {} if notes is None else notes
    result: dict[str, float | None] = {}
    for spec in specs:
        reason = spec.reason_skipped(inputs) if names is None else None
        if reason is not None:
            result[spec.name], notes[spec.name] = None, reason
            continue
        result[spec.name] = spec.compute(inputs)
        notes[spec.name] = spec.note(inputs)
    if details is not None:
        details.update(inputs.details)
    return result


def _as_label_array(labels: ArrayLike) -> ArrayLike:
    return labels if isinstance(labels, (torch.Tensor, np.ndarray)) else np.asarray(labels)
