"""Pair sums over one point set split evenly over the ranks, and the one combiner of partial log-sum-exps."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ...distributed.shard import Shard
from .logsumexp import BLOCK_ELEMENTS, tiled_logsumexp

# Rows per tile of a rank's own triangle at least (fewer makes GEMMs too thin to run at full speed).
TRIANGLE_MIN_ROWS = 256


def balanced_pairs_logsumexp(
    rows: torch.Tensor,
    columns: torch.Tensor,
    sizes: Sequence[int],
    shard: Shard,
    *,
    column_lse: bool = False,
    clamp_max: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-sum-exps over the unordered pairs of one point set, each pair on exactly one rank, evenly.

    The global set is every rank's points, block ``b`` of ``sizes[b]`` points
    for rank ``b`` (in rank order); ``columns`` holds all of them (gathered) and
    ``rows`` this rank's own block in the engine's row form. Rank ``r``
    computes its block's own pairs ``i < j`` and, for every other rank ``b``,
    half of the block-pair rectangle: against the first ``sizes[b] // 2``
    points of each later block, and with its own points from ``sizes[r] // 2``
    on against every earlier block. So every unordered pair is visited once,
    by a rank that holds one of its points, and with equal blocks each rank
    visits ``1/P`` of them (``M·m_r/2`` pairs for ``M`` points) — not the
    ``1/P``-of-``M²`` of row-wise ownership, which would do twice the pair work.

    Args:
        rows: ``(m_r, e)`` this rank's points as engine rows (temperature folded in).
        columns: ``(M, e)`` every rank's points as engine columns, blocks in rank order.
        sizes: points per rank, summing to ``M``.
        shard: where this rank sits.
        column_lse: also return each point's partial log-sum-exp over the pairs
            this rank visited in which it takes part (as row or column).
        clamp_max: as :func:`~aligniform.losses.engine.tiled_logsumexp`.

    Returns:
        ``(row, points)``: ``row`` is ``(m_r,)``, for each own point the
        log-sum-exp over the visited pairs in which it is the row (summing
        ``exp`` over ``row`` on every rank counts each pair once); ``points``
        (with ``column_lse``) is ``(M,)``, every point's partial log-sum-exp
        over the pairs visited here (``-inf`` where none), to be combined with
        ``shard.logsumexp``.
    """
    sizes = [int(size) for size in sizes]
    rank = shard.rank
    starts = [sum(sizes[:b]) for b in range(len(sizes))]
    own, first = sizes[rank], starts[rank]
    own_columns = columns[first : first + own]
    half = [size // 2 for size in sizes]
    minus_inf = rows.new_full((), -math.inf)

    # Own pairs i < j, in up to 8 row blocks: a tile across the diagonal computes its masked half
    # too, and one tile for the whole triangle would double the triangle's work.
    triangle_rows, triangle_columns = tiled_logsumexp(
        rows,
        own_columns,
        column_lse=column_lse,
        mask="upper",
        clamp_max=clamp_max,
        block_rows=min(max(TRIANGLE_MIN_ROWS, -(-own // 8)), max(1, BLOCK_ELEMENTS // max(1, own))),
    )
    assert triangle_rows is not None
    row_parts = [triangle_rows]
    # Against the first half of every later block.
    later = [columns[starts[b] : starts[b] + half[b]] for b in range(rank + 1, len(sizes)) if half[b]]
    right_columns = None
    if later and own:
        right_rows, right_columns = tiled_logsumexp(rows, torch.cat(later), column_lse=column_lse, clamp_max=clamp_max)
        assert right_rows is not None
        row_parts.append(right_rows)
    # The own points from half[rank] on, against every earlier block.
    left_columns = None
    if first and own - half[rank]:
        left_rows, left_columns = tiled_logsumexp(
            rows[half[rank] :], columns[:first], column_lse=column_lse, clamp_max=clamp_max
        )
        assert left_rows is not None
        row_parts.append(torch.cat([minus_inf.expand(half[rank]), left_rows]))
    row = combine_logsumexp(row_parts)
    if not column_lse:
        return row, None

    assert triangle_columns is not None
    pieces = [left_columns if left_columns is not None else minus_inf.expand(first)]
    pieces.append(combine_logsumexp([row, triangle_columns]))
    right = iter(() if right_columns is None else right_columns.split([half[b] for b in range(rank + 1, len(sizes))]))
    for b in range(rank + 1, len(sizes)):
        taken = next(right) if right_columns is not None else minus_inf.expand(0)
        pieces += [taken, minus_inf.expand(sizes[b] - taken.shape[0])]
    return row, torch.cat(pieces)


def combine_logsumexp(parts: list[torch.Tensor]) -> torch.Tensor:
    """Elementwise log-sum-exp of a few partial log-sum-exps; ``-inf`` in all of them stays ``-inf`` with zero
    gradient (``torch.logaddexp`` would give NaN there; e.g. a one-point block's only point has no own pair).
    """
    if len(parts) == 1:
        return parts[0]
    stacked = torch.stack(parts)
    empty = torch.isneginf(stacked).all(0)
    safe = torch.where(empty, torch.zeros_like(stacked), stacked)  # keeps NaN out of the backward
    return torch.where(empty, torch.full_like(empty, -math.inf, dtype=stacked.dtype), torch.logsumexp(safe, 0))
