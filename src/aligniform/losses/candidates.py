"""Shared plumbing for the contrastive family: inputs, temperatures, and which candidates each anchor sees.

Every loss of the family is a mean over anchors of a term built from the
anchor's positive logit and a reduction over its candidates. The candidates:

* ``symmetric=True`` (the papers' in-batch form): anchors x_i against
  [y, queue] and anchors y_i against [x, queue]; the positive is the other view
  of the same sample, every other row of the other view is a negative
  (``batch_negatives``), and so is every queue row.
* ``symmetric=False`` with a queue (MoCo): queries x_i against [their own key
  y_i, queue]. The other keys of the batch are *not* negatives unless
  ``batch_negatives=True`` asks for them (a different loss, kept as an option).
* ``symmetric=False`` without a queue: x_i against [y] (one direction of the
  in-batch form; CLIP's image-to-text half).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._numerics import upcast
from .._validation import check_feature_pair, check_positive, check_queue, input_checks_enabled
from .engine import Mask, combine_logsumexp, tiled_logsumexp
from .engine.fused import fused_infonce
from .global_batch import Shard, checked_inputs, mean_terms


def positive_pairs(
    x: torch.Tensor, y: torch.Tensor, queue: torch.Tensor | None, normalize: bool, shard: Shard | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate (x, y[, queue]) for losses that need in-batch negatives; upcast half precision.

    With a ``shard``, x and y are this rank's rows and the row minimum applies to the global batch.
    """
    min_rows = 1 if queue is not None else 2

    def check() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        checked_x, checked_y = check_feature_pair(
            x, y, normalize=normalize, min_rows=0 if shard is not None else min_rows
        )
        return checked_x, checked_y, check_queue(queue, checked_x, normalize=normalize)

    x, y, queue = upcast(*checked_inputs(shard, check, min_rows))
    assert x is not None and y is not None
    return x, y, queue


def check_scale(value: float | torch.Tensor, name: str) -> float | torch.Tensor:
    """A positive temperature (or uniformity scale): a number, or a 1-element tensor that may carry gradient.

    A tensor is returned as a 0-dim view of itself, so the loss is
    differentiable in it (e.g. CLIP's ``tau = 1 / logit_scale.exp()``).
    """
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or not value.is_floating_point():
            raise ValueError(
                f"{name} must be a positive number or a one-element floating-point tensor, "
                f"got a {value.dtype} tensor of shape {tuple(value.shape)}"
            )
        check_positive(float(value.detach()), name)
        return value.reshape(())
    return check_positive(value, name)


def scale_argument(name: str) -> Callable[[float | torch.Tensor], float | torch.Tensor]:
    """A module's check of a scale argument: a number is checked, a tensor (an ``nn.Parameter``) kept as given."""

    def check(value: float | torch.Tensor) -> float | torch.Tensor:
        checked = check_scale(value, name)
        return value if isinstance(value, torch.Tensor) else checked

    return check


def scale_value(value: float | torch.Tensor) -> float:
    """A temperature as a Python float (for reprs), whether a number or a tensor with gradient."""
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def resolve_batch_negatives(batch_negatives: bool | None, queue: torch.Tensor | None, symmetric: bool) -> bool:
    """The default: in-batch negatives, except in MoCo's form (one direction with a queue)."""
    if batch_negatives is None:
        return symmetric or queue is None
    if not batch_negatives and queue is None:
        raise ValueError("batch_negatives=False needs a queue: without one the anchors have no negatives")
    return bool(batch_negatives)


def negatives_per_anchor(n: int, queue: torch.Tensor | None, batch_negatives: bool) -> int:
    """M, the number of negatives each anchor sees."""
    return (n - 1 if batch_negatives else 0) + (0 if queue is None else queue.shape[0])


def directions(x: torch.Tensor, y: torch.Tensor, symmetric: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(anchors, their positives' view) for each direction of the loss."""
    return [(x, y), (y, x)] if symmetric else [(x, y)]


def mean_softmax_terms(
    x: torch.Tensor,
    y: torch.Tensor,
    queue: torch.Tensor | None,
    tau: float | torch.Tensor,
    symmetric: bool,
    batch_negatives: bool,
    positive_in_denominator: bool = True,
    shard: Shard | None = None,
) -> torch.Tensor:
    """The mean of :func:`softmax_terms` over every rank's anchors; one fused node for a small in-batch loss.

    ``x`` and ``y`` come from :func:`positive_pairs` (so with input checks on, their rows are unit-norm).

    A batch whose logits are one tile, without queue or shard, goes through
    :class:`~aligniform.losses.engine.fused.FusedInfoNCE`: the same arithmetic as the tiled
    path (bitwise), with one autograd node instead of a dozen.
    """
    if queue is None and shard is None and batch_negatives:
        fused = fused_infonce(x, y, tau, symmetric, positive_in_denominator, unit_rows=input_checks_enabled())
        if fused is not None:
            return fused
    terms = softmax_terms(x, y, queue, tau, symmetric, batch_negatives, positive_in_denominator, shard)
    return mean_terms(terms, shard)


def softmax_terms(
    x: torch.Tensor,
    y: torch.Tensor,
    queue: torch.Tensor | None,
    tau: float | torch.Tensor,
    symmetric: bool,
    batch_negatives: bool,
    positive_in_denominator: bool = True,
    shard: Shard | None = None,
) -> torch.Tensor:
    """Per anchor, ``LSE over its candidates of s/tau`` minus its positive logit, all directions concatenated.

    With ``positive_in_denominator`` this is each anchor's InfoNCE cross-entropy;
    without, the log-sum-exp runs over the negatives only (the asymptotic form).
    The symmetric in-batch part is one tiled pass giving both directions (rows
    and columns of x yᵀ/tau); the queue part is one pass of all anchors against
    the queue. Exact, in O(N × block) memory.

    With a ``shard`` the anchors are this rank's rows, against the gathered
    other view: their row log-sum-exps are final, the column ones (the other
    direction) are combined over the ranks, and the terms are this rank's anchors'.
    """
    n = x.shape[0]
    anchors = x / tau
    positive = (anchors * y).sum(1)
    parts: list[list[torch.Tensor]] = [[] for _ in range(2 if symmetric else 1)]
    if batch_negatives:
        mask: Mask = "none" if positive_in_denominator else "diagonal"
        candidates = y if shard is None else shard.gather(y)
        offset = 0 if shard is None else shard.start
        rows, columns = tiled_logsumexp(anchors, candidates, column_lse=symmetric, mask=mask, offset=offset)
        assert rows is not None
        parts[0].append(rows)
        if columns is not None:
            parts[1].append(columns if shard is None else shard.local(shard.logsumexp(columns)))
    elif positive_in_denominator:
        for part in parts:
            part.append(positive)
    if queue is not None:
        queue_anchors = torch.cat([anchors, y / tau]) if symmetric else anchors
        queue_lse, _ = tiled_logsumexp(queue_anchors, queue)
        assert queue_lse is not None
        for part, chunk in zip(parts, queue_lse.split(n)):
            part.append(chunk)
    lse = torch.cat([combine_logsumexp(part) for part in parts])
    return lse - positive.repeat(len(parts))
