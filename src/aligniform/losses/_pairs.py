"""Shared plumbing for the in-batch contrastive family: inputs, logits and hard-negative masks."""

from __future__ import annotations

import math

import torch

from .._numerics import upcast
from .._validation import check_feature_pair, check_queue


def positive_pairs(x, y, queue, normalize: bool):
    """Validate (x, y[, queue]) for losses that need in-batch negatives; upcast half precision."""
    min_rows = 1 if queue is not None else 2
    x, y = check_feature_pair(x, y, normalize=normalize, min_rows=min_rows)
    queue = check_queue(queue, x, normalize=normalize)
    return upcast(x, y, queue)


def directional_similarities(x, y, queue, symmetric: bool = True):
    """Similarity rows for each direction of the loss.

    Returns (N, N + K) matrices: anchors x against candidates [y, queue], and,
    when ``symmetric``, anchors y against candidates [x, queue]. In each, column
    i of row i is the positive pair; every other column is a negative. MoCo's
    form is one-directional: queries x against [keys y, queue].
    """
    cross = x @ y.T
    if queue is None:
        return (cross, cross.T) if symmetric else (cross,)
    x_anchors = torch.cat([cross, x @ queue.T], 1)
    return (x_anchors, torch.cat([cross.T, y @ queue.T], 1)) if symmetric else (x_anchors,)


def mean_over_directions(per_direction, similarities) -> torch.Tensor:
    """The loss averaged over the directions (both for the symmetric form, one for MoCo's)."""
    return sum(per_direction(s) for s in similarities) / len(similarities)


def hardest_negatives_mask(similarity: torch.Tensor, fraction: float) -> torch.Tensor:
    """Boolean mask of each row's negatives in its upper-``fraction`` similarity quantile.

    Wang & Liu (2021) keep negatives with s_ik >= s_alpha^(i), the upper-alpha
    quantile of anchor i's negative similarities: the ceil(alpha * M) largest of
    the M negatives (plus any ties at that threshold). The positive (the
    diagonal) is never in the mask.
    """
    n, m = similarity.shape
    diagonal = torch.zeros_like(similarity, dtype=torch.bool)
    diagonal[:, :n].fill_diagonal_(True)
    negatives = similarity.detach().masked_fill(diagonal, -math.inf)
    kept = max(1, math.ceil(fraction * (m - 1)))
    threshold = negatives.topk(kept, dim=1).values[:, -1:]
    return (negatives >= threshold) & ~diagonal
