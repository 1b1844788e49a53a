"""``HypersphereMetrics``: alignment, uniformity and the rest as a streaming ``torchmetrics.Metric``.

Needs ``torchmetrics`` (``pip install 'aligniform[torchmetrics]'``).
"""

from __future__ import annotations

from typing import Any, cast

import torch

from .._extras import requires_extra
from .._validation import check_has_storage, check_labels, check_same_shape
from .common import MeasureOptions

with requires_extra("torchmetrics"):
    from torchmetrics import Metric
    from torchmetrics.utilities import dim_zero_cat

__all__ = ["HypersphereMetrics"]


class HypersphereMetrics(Metric):
    """Alignment, uniformity, tolerance, effective rank, mean classifier, modality gap and retrieval of embeddings.

    ``update(x, y, labels=None)`` adds positive pairs (row i of ``x`` with
    row i of ``y``: two views of one sample, or the two towers' embeddings of
    one pair); ``compute()`` measures everything seen since the last
    ``reset()`` with :func:`aligniform.integrations.common.hypersphere_metrics`
    and returns a dict of float64 scalar tensors: ``alignment``,
    ``uniformity`` (of ``x``), ``uniformity_y``, ``modality_gap``,
    ``recall_at_{1,5}_{x_to_y,y_to_x}`` and ``effective_rank`` always;
    ``tolerance`` and ``mean_classifier_acc`` when labels are given.

    The values are exact over everything seen: the states keep every row
    (O(N·d) memory) and uniformity runs over all N(N-1)/2 pairs with the tiled
    engine (O(N²d) time, O(N·block) memory), retrieval over all N² query-key
    pairs. For very large sets pass ``max_pairs``: uniformity is then estimated
    from that many uniformly sampled pairs (seeded; the mean of exp(-t d²) is
    unbiased, its log consistent) and retrieval from max(1000, max_pairs / N)
    sampled queries against all keys.

    Across processes the rows are gathered (``dist_reduce_fx="cat"``, rank
    order) before measuring, so every rank's ``compute()`` equals one process
    measuring the union. Every process must call ``update`` at least once, and
    either always or never with labels.

    Args:
        normalize: L2-normalise rows before measuring (default; encoders
            rarely end on the sphere). With ``False`` rows must be unit-norm.
        t: uniformity temperature.
        alpha: alignment exponent.
        max_pairs: the pair-sampled mode above; ``None``: exact.
        seed: seed of the pair sample and of the mean classifier's split.
        **kwargs: ``torchmetrics.Metric`` options (``sync_on_compute``,
            ``process_group``, ``compute_on_cpu``, ...).

    Examples:
        >>> import torch
        >>> from aligniform.integrations.torchmetrics import HypersphereMetrics
        >>> metric = HypersphereMetrics()
        >>> z = torch.randn(64, 8)
        >>> for rows in z.split(16):  # four batches of pairs
        ...     metric.update(rows, rows + 0.01 * torch.randn_like(rows))
        >>> values = metric.compute()
        >>> float(values["alignment"]) < 0.01, sorted(values)[:3]
        (True, ['alignment', 'effective_rank', 'modality_gap'])
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    x: list[torch.Tensor] | torch.Tensor
    y: list[torch.Tensor] | torch.Tensor
    labels: list[torch.Tensor] | torch.Tensor

    def __init__(
        self,
        *,
        normalize: bool = True,
        t: float = 2.0,
        alpha: float = 2.0,
        max_pairs: int | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.options = MeasureOptions(normalize, t, alpha, max_pairs, seed)
        self.add_state("x", default=[], dist_reduce_fx="cat")
        self.add_state("y", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")
        self._with_labels: bool | None = None

    def update(self, x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """Add the positive pairs ``(x_i, y_i)`` (``(B, d)`` each) and their optional ``(B,)`` integer labels."""
        x, y = _tensor(x, "x"), _tensor(y, "y")
        for name, value in (("x", x), ("y", y)):
            if value.dim() != 2 or not value.is_floating_point():
                raise ValueError(f"{name} must be a 2-D floating-point (B, d) tensor, got {tuple(value.shape)}")
        check_same_shape(x, y)
        stored = cast(list, self.x)
        if isinstance(stored, list) and stored and stored[0].shape[1] != x.shape[1]:
            raise ValueError(
                f"x and y have {x.shape[1]} columns but earlier updates had {stored[0].shape[1]}: every update "
                f"must give embeddings of the same width (call reset() before measuring another model)"
            )
        if self._with_labels is not None and self._with_labels != (labels is not None):
            raise ValueError(
                "give labels with every update or with none: "
                + ("this update has none" if labels is None else "earlier updates had none")
            )
        self._with_labels = labels is not None
        cast(list, self.x).append(_stored(x))  # list states until a distributed sync concatenates them
        cast(list, self.y).append(_stored(y))
        if labels is not None:
            cast(list, self.labels).append(check_labels(_tensor(labels, "labels"), x.shape[0]).to(x.device))

    def compute(self) -> dict[str, torch.Tensor]:
        """Measure every pair seen (on every process): a dict of float64 scalar tensors."""
        x, y = _concatenated(self.x), _concatenated(self.y)
        if x is None or y is None or x.numel() == 0:
            raise ValueError("HypersphereMetrics.compute() before any update(x, y)")
        labels = _concatenated(self.labels)
        labels = labels.long() if labels is not None and labels.numel() > 0 else None
        values = self.options.metrics(x, y, labels)
        return {key: torch.tensor(value, dtype=torch.float64) for key, value in values.items()}

    def reset(self) -> None:
        """Forget every pair seen (and whether they had labels)."""
        super().reset()
        self._with_labels = None


def _tensor(value: Any, name: str) -> torch.Tensor:
    """``value`` as a detached tensor; what is no array of numbers (None, a string) or has no values is a TypeError."""
    if not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError):  # torch says "Could not infer dtype of NoneType"
            raise TypeError(f"`{name}` must be a tensor or an array of numbers, got {type(value).__name__}") from None
    check_has_storage(value, name)
    return value.detach()


def _stored(x: torch.Tensor) -> torch.Tensor:
    """Half-precision rows kept as float32, float64 as is: the metrics accumulate in float64 either way."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _concatenated(state: list[torch.Tensor] | torch.Tensor) -> torch.Tensor | None:
    if isinstance(state, list):
        return dim_zero_cat(state) if state else None
    return state
