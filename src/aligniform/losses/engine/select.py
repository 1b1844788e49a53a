"""Exact per-row k-th largest value by counting: a histogram per row, then the values of one bucket.

``kthvalue`` on a (rows × M) block copies and partially sorts every row: several GEMMs' time on a CPU at
M = 4096 (docs/benchmarks.md), once the hard loss's main cost. Here each row's threshold is found by counting:

1. **Range.** Each row's value range is estimated from a strided sample of ``SAMPLES`` of its entries (finite
   ones only): a few thousand elements in all, not a pass over the rows. The range only has to be *useful*, not
   right: values outside it fall into the first or last bucket and are still counted.
2. **Counts, per tile of rows.** The rows are walked in tiles of about ``SWEEP_ELEMENTS`` values, small enough
   to stay in a core's cache. Each value's bucket (``BUCKETS`` equal buckets over the range) is a monotone
   function of the value within its row — a subtraction, then a multiplication by a positive scale, each
   rounded by IEEE rules, then a truncation — so a higher bucket never holds a smaller value. One ``bincount``
   over (row, bucket) keys counts the tile; a cumulative sum and a ``searchsorted`` name the bucket holding
   each row's k-th largest value and how many values lie above it.
3. **Resolve exactly.** That bucket's values (a few dozen per row for continuous data) are gathered while the
   tile is still in cache, and sorted; the wanted value is the one at the remaining rank. Counting and
   gathering read the same bucket indices, so the result is the exact k-th largest float, ties included,
   whatever the rounding of the bucket bounds.

Rows whose bucket holds too many values (a constant row, a row of a few distinct values: heavy ties at the
threshold) take a partial ``topk``: correct, not fast; so do narrow rows, and a k-th largest within
``DIRECT_RANK`` of either end of its row, where ``topk`` is the faster. ``-inf`` and ``+inf`` entries are
counted like any other value (in the first and last bucket), so an excluded entry may be set to ``-inf``.
Values must not be NaN.
"""

from __future__ import annotations

import math

import torch

# Buckets per row: ~M/256 values per bucket on average; the bucket at a dense quantile holds a few times that.
BUCKETS = 256
# Rows narrower than this are selected by topk directly: the counting would not pay for its passes.
DIRECT_COLUMNS = 2 * BUCKETS
# A k-th largest this close to either end of its row is read from a partial top-k instead: at M = 4096 (1 thread)
# ``topk`` of 32 costs about what the counting does, fewer much less (measured with the counting's benchmark).
DIRECT_RANK = 32
# Entries per row sampled for its value range (a stride over the row).
SAMPLES = 128
# Values per tile of rows: 2^17 float32 (512 KiB) plus their int32 keys fit a core's L2 cache with room to spare;
# measured at M = 4096 (1 thread), 2^16 to 2^18 cost about the same, smaller tiles more (per-call overhead).
SWEEP_ELEMENTS = 1 << 17


def kth_largest(values: torch.Tensor, k: int) -> torch.Tensor:
    """Each row's ``k``-th largest entry (1 <= k <= columns), exactly, as ``values.kthvalue(M - k + 1, 1)``.

    Examples:
        >>> import torch
        >>> v = torch.randn(3, 1000, dtype=torch.float64)
        >>> bool((kth_largest(v, 80) == v.kthvalue(1000 - 80 + 1, 1).values).all())
        True
    """
    n, m = values.shape
    if m < DIRECT_COLUMNS or min(k, m - k + 1) <= DIRECT_RANK or n == 0:
        return _direct(values, k)
    low, scale, usable = _ranges(values)
    limit = 4 * m // BUCKETS + 64  # a bucket holding more than this is resolved by topk
    rows_per_tile = max(1, SWEEP_ELEMENTS // m)
    positions = values.new_empty(rows_per_tile, m)
    keys = torch.empty(rows_per_tile, m, dtype=torch.int32, device=values.device)
    base = (torch.arange(rows_per_tile, dtype=torch.int32, device=values.device) * BUCKETS)[:, None]
    # Inf times a zero scale (a row without a usable range) is nan: those rows need their positions cleaned.
    clean = not bool(usable.all())
    below = torch.full((rows_per_tile, 1), m - k, dtype=torch.int64, device=values.device)
    hit_rows: list[torch.Tensor] = []
    hit_values: list[torch.Tensor] = []
    ranks: list[torch.Tensor] = []
    sizes: list[torch.Tensor] = []
    for start in range(0, n, rows_per_tile):
        stop = min(start + rows_per_tile, n)
        tile, h = values[start:stop], stop - start
        position = torch.sub(tile, low[start:stop, None], out=positions[:h])
        position.mul_(scale[start:stop, None]).clamp_(0, BUCKETS - 1)
        if clean:
            position.nan_to_num_(0.0)
        key = keys[:h]
        key.copy_(position)  # truncation: the bucket index
        key.add_(base[:h])
        counts = torch.bincount(key.view(-1), minlength=h * BUCKETS).view(h, BUCKETS)
        # from_bottom[:, b]: values in buckets <= b. The k-th largest is in the first bucket b with
        # from_bottom[b] > m - k, i.e. after the buckets whose cumulative count is still <= m - k.
        from_bottom = counts.cumsum(1)
        target = torch.searchsorted(from_bottom, below[:h], right=True)
        inside = counts.gather(1, target)[:, 0]
        rank = k - (m - from_bottom.gather(1, target)[:, 0])  # the rank-th largest of its bucket
        crowded = (inside > limit) | ~usable[start:stop]
        wanted = torch.where(crowded, -1, target[:, 0] + base[:h, 0])  # -1 matches no key
        rows, columns = (key == wanted[:, None].to(torch.int32)).nonzero(as_tuple=True)
        hit_rows.append(rows + start)
        hit_values.append(tile[rows, columns])
        ranks.append(rank)
        sizes.append(torch.where(crowded, 0, inside))
    return _resolve(values, k, torch.cat(hit_rows), torch.cat(hit_values), torch.cat(ranks), torch.cat(sizes))


def _direct(values: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th largest of each row from an unsorted partial top-k from the nearer end of the row.

    The same value as ``kthvalue``, ties included; as fast or faster, much faster near the ends.
    """
    m = values.shape[1]
    if k <= m - k + 1:
        return values.topk(k, 1, sorted=False).values.amin(1)
    return values.topk(m - k + 1, 1, largest=False, sorted=False).values.amax(1)


def _ranges(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: the low end of its sampled range, the bucket scale, and whether the range is usable."""
    m = values.shape[1]
    sample = values[:, :: max(1, m // SAMPLES)]
    finite = torch.isfinite(sample)
    low = torch.where(finite, sample, math.inf).amin(1)
    high = torch.where(finite, sample, -math.inf).amax(1)
    width = high - low
    usable = torch.isfinite(width) & (width > 0)
    # The last bucket ends at BUCKETS - 1/2 so rounding cannot push the high end past it; the clamp catches
    # the values beyond the sampled range (and -inf, an excluded entry).
    scale = (BUCKETS - 0.5) / torch.where(usable, width, torch.ones_like(width))
    usable &= torch.isfinite(scale)  # a subnormal width overflows the scale: 0 · inf would be nan
    scale = torch.where(usable, scale, 0.0)
    low = torch.where(usable, low, 0.0)
    return low, scale, usable


def _resolve(
    values: torch.Tensor, k: int, rows: torch.Tensor, hits: torch.Tensor, ranks: torch.Tensor, sizes: torch.Tensor
) -> torch.Tensor:
    """The rank-th largest of each row's gathered bucket (``sizes`` values, row-major); ``topk`` where size is 0."""
    n, m = values.shape
    out = values.new_empty(n)
    if rows.numel():
        # Row-major: each row's hits are contiguous; lay them out as a small padded matrix and sort it.
        starts = sizes.cumsum(0) - sizes
        width = int(sizes.max())
        padded = values.new_full((n, width), -math.inf)
        padded[rows, torch.arange(rows.numel(), device=values.device) - starts[rows]] = hits
        ordered = padded.sort(1, descending=True).values
        out = ordered.gather(1, (ranks - 1).clamp(0, width - 1)[:, None])[:, 0]
    crowded = sizes == 0  # a usable bucket holds the k-th value, so it is never empty
    if bool(crowded.any()):
        out[crowded] = _direct(values[crowded], k)
    return out
