"""The global batch a loss computes on: its size, its mean and its input checks, with or without a shard.

The sharded path of the losses: each process computes only its own anchors' terms.

Under ``torchrun`` a loss called with ``shard=`` (a
:class:`~aligniform.distributed.Shard`, which :func:`aligniform.distributed.global_loss`
builds) receives this rank's rows ``x_r, y_r`` (global rows
``[shard.start, shard.stop)``) instead of the whole batch, and returns the loss
of the whole global batch, the same value on every rank. The pattern, for any
loss that is a mean over anchors of terms built from log-sum-exps (or sums)
over candidates:

1. ``shard.gather(y)`` the candidates that anchors need from other ranks (the
   two views come from one cached collective per step);
2. run the engine on **this rank's anchors only** against them, with
   ``offset=shard.start`` so the masks know the rows' global indices:
   the row log-sum-exps of this rank's anchors are final;
3. a direction read from the same tiles' *columns* (the symmetric loss's
   other direction) is partial: ``shard.logsumexp`` combines it over the
   ranks and ``shard.local`` keeps this rank's anchors;
4. a pair sum over a single set (uniformity, NT-Xent) visits each unordered
   pair once, split evenly over the ranks by
   :func:`~aligniform.losses.engine.balanced_pairs_logsumexp`;
5. the loss is ``shard.mean(terms)`` of this rank's terms (:func:`mean_terms`),
   or a ``shard.logsumexp``/``shard.sum`` of per-rank partial sums.

Every step is a collective or local, so each rank's work is about ``1/P`` of
one process's, and the value and every gradient equal one process on the whole
batch (the collectives' backward sums over ranks; see ``docs/distributed.md``).
Input checks go through :func:`checked_inputs` so that a failing rank makes
every rank raise instead of leaving them waiting. With ``shard=None`` each
helper is the plain one-process computation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

from ..distributed.shard import Shard

__all__ = ["Shard", "batch_size", "checked_inputs", "mean_terms"]

T = TypeVar("T")


def mean_terms(terms: torch.Tensor, shard: Shard | None) -> torch.Tensor:
    """The mean over every rank's per-anchor ``terms`` (this process's terms alone without a shard)."""
    return terms.mean() if shard is None else shard.mean(terms)


def batch_size(x: torch.Tensor, shard: Shard | None) -> int:
    """N of the global batch: ``x``'s rows, or the shard's global count."""
    return x.shape[0] if shard is None else shard.size


def checked_inputs(shard: Shard | None, check: Callable[[], T], min_rows: int = 1) -> T:
    """Run a loss's input checks; with a shard, on every rank together, and ``min_rows`` on the global batch.

    ``check`` validates this rank's rows (its own row minimum should be 0 with a
    shard: a rank may hold few rows). Every rank raises if any rank's check fails.
    """
    if shard is None:
        return check()
    if shard.size < min_rows:
        raise ValueError(
            f"the global batch has {shard.size} row(s) but at least {min_rows} are needed "
            f"(pairs of distinct samples need a batch of two or more)"
        )
    return shard.checked(check)
