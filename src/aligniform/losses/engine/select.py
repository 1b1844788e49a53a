"""Exact per-row (or per-column) k-th largest value by counting: a histogram per row, then one bucket's values.

``kthvalue`` on a (rows × M) block copies and partially sorts every row: several GEMMs' time on a CPU at
M = 4096 (docs/benchmarks.md), once the hard loss's main cost. Here each row's threshold is found by counting:

1. **Range.** Each row's value range is estimated from a strided sample of ``SAMPLES`` of its entries (finite
   ones only): a few thousand elements in all, not a pass over the rows. The range only has to be *useful*, not
   right: values outside it fall into the first or last bucket and are still counted.
2. **Counts, per tile of rows.** The rows are walked in tiles of about ``SWEEP_ELEMENTS`` values, small enough
   to stay in the last-level cache. Each value's bucket (``BUCKETS`` equal buckets over the range) is a monotone
   function of the value within its row — a subtraction, then a multiplication by a positive scale, each
   rounded by IEEE rules, then a floor — so a higher bucket never holds a smaller value. One ``bincount``
   over (row, bucket) keys counts the tile; a cumulative sum and a ``searchsorted`` name the bucket holding
   each row's k-th largest value and how many values lie above it.
3. **Resolve exactly.** That bucket's values (a few dozen per row for continuous data) are gathered while the
   tile is still in cache, and sorted; the wanted value is the one at the remaining rank. Counting and
   gathering read the same bucket indices, so the result is the exact k-th largest float, ties included,
   whatever the rounding of the bucket bounds. The gathering avoids boolean masks over every entry (torch's
   comparisons into ``bool`` and ``nonzero`` are not vectorised on a CPU): the bucket indices are compared
   into a float 0/1 buffer, summed over ``LANES`` strided groups, and only the groups holding a hit are read.

:func:`kth_largest_columns` does the same per column of a row-major matrix without transposing it (a
transposed copy costs a pass with poor locality and a fresh buffer): slabs of a few hundred columns, all rows,
are counted (one ``bincount`` over (column, bucket) keys per slab) and then gathered, each in one sweep.

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
# Values per tile of rows: 2^19 (128 rows of 4096): each tile's buffers stay in the last-level cache, and the
# per-tile small operations (about 20 calls) are amortised; measured at M = 4096 (1 thread), 2^17 cost ~1.5x more.
SWEEP_ELEMENTS = 1 << 19
# Values per slab of columns (kth_largest_columns): all rows of a few hundred columns, counted and gathered in
# two sweeps while in the last-level cache.
SLAB_ELEMENTS = 1 << 20
# At most this many columns per slab: wider slabs cost more at N = 1024 (measured, 1 thread).
SLAB_COLUMNS = 256
# Strided groups in which the gathering looks for a wanted bucket's entries (see _hits).
LANES = 8


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
    marks = values.new_empty(-(-rows_per_tile * m // LANES) * LANES)
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
        key = _buckets(tile, low[start:stop, None], scale[start:stop, None], clean, positions[:h], keys[:h])
        key.add_(base[:h])
        counts = torch.bincount(key.view(-1), minlength=h * BUCKETS).view(h, BUCKETS)
        target, rank, inside, crowded = _target(counts, below[:h], k, m, limit, usable[start:stop])
        wanted = torch.where(crowded, -1, target).to(values.dtype)  # -1 matches no bucket
        found = _hits(positions[:h], wanted[:, None], marks)
        rows, columns = found // m, found % m
        hit_rows.append(rows + start)
        hit_values.append(_take(tile, rows, columns))
        ranks.append(rank)
        sizes.append(torch.where(crowded, 0, inside))
    return _resolve(values, k, torch.cat(hit_rows), torch.cat(hit_values), torch.cat(ranks), torch.cat(sizes))


def kth_largest_columns(values: torch.Tensor, k: int) -> torch.Tensor:
    """Each column's ``k``-th largest entry (1 <= k <= rows), exactly, as ``kth_largest(values.T, k)``.

    Read in place, without a transposed copy: the columns are taken in slabs of all rows and at most
    ``SLAB_COLUMNS`` columns (about ``SLAB_ELEMENTS`` values at most; each row of a slab is a contiguous run),
    each column with its own sampled range.
    A slab is walked twice: once to count each (column, bucket), once to gather each column's wanted bucket.

    Examples:
        >>> import torch
        >>> v = torch.randn(1000, 3, dtype=torch.float64)
        >>> bool((kth_largest_columns(v, 80) == v.T.kthvalue(1000 - 80 + 1, 1).values).all())
        True
    """
    n, m = values.shape
    if n < DIRECT_COLUMNS or min(k, n - k + 1) <= DIRECT_RANK or m == 0:
        return _direct(values.T, k)
    width = max(1, min(m, SLAB_COLUMNS, SLAB_ELEMENTS // n))
    # Scratch for one slab, reused by every slab: fresh large buffers cost their page faults.
    scratch = values.new_empty(2, -(-n * width // LANES) * LANES)
    keys = torch.empty(n * width, dtype=torch.int32, device=values.device)
    base = torch.arange(width, dtype=torch.int32, device=values.device) * BUCKETS
    return torch.cat(
        [_slab_kth(values[:, start : start + width], k, scratch, keys, base) for start in range(0, m, width)]
    )


def _slab_kth(
    slab: torch.Tensor, k: int, scratch: torch.Tensor, keys: torch.Tensor, base: torch.Tensor
) -> torch.Tensor:
    """:func:`kth_largest_columns` of one slab of columns: count, then gather, then resolve."""
    n, w = slab.shape
    low, scale, usable = _ranges(slab.T)
    clean = not bool(usable.all())
    positions, marks = scratch[0, : n * w].view(n, w), scratch[1]
    key = _buckets(slab, low[None], scale[None], clean, positions, keys[: n * w].view(n, w))
    # Keys column-major in the counts ((column, bucket) pairs), so one bincount counts every column.
    counts = torch.bincount(key.add_(base[:w]).view(-1), minlength=w * BUCKETS).view(w, BUCKETS)
    below = torch.full((w, 1), n - k, dtype=torch.int64, device=slab.device)
    target, rank, inside, crowded = _target(counts, below, k, n, 4 * n // BUCKETS + 64, usable)
    wanted = torch.where(crowded, -1, target).to(slab.dtype)  # -1 matches no bucket
    found = _hits(positions, wanted[None], marks)
    # Hits come row-major; _resolve wants each column's hits together, in column order.
    rows, columns = found // w, found % w
    order = torch.sort(columns * n + rows).indices
    rows, columns = rows[order], columns[order]
    return _resolve(slab.T, k, columns, _take(slab, rows, columns), rank, torch.where(crowded, 0, inside))


def _hits(position: torch.Tensor, wanted: torch.Tensor, marks: torch.Tensor) -> torch.Tensor:
    """Flat indices, ascending, of the entries of ``position`` (bucket indices as floats) equal to ``wanted``.

    A comparison into a float tensor is vectorised where a boolean one and ``nonzero`` over every entry are
    not. The 0/1 marks are summed over ``LANES`` strided groups (a vectorised reduction) to find the few groups
    holding a hit; only their entries are looked at again.
    """
    size = position.numel()
    lanes = -(-size // LANES)
    flat = marks[: lanes * LANES]
    torch.eq(position, wanted, out=flat[:size].view_as(position))
    flat[size:].zero_()
    lane = (flat.view(LANES, lanes).sum(0) > 0).nonzero()[:, 0]
    candidates = (lane[None] + lanes * torch.arange(LANES, device=lane.device)[:, None]).view(-1)
    # Ascending: the lanes ascend within each group, and the groups follow each other.
    return candidates[flat.index_select(0, candidates) > 0]


def _take(block: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """``block[rows, columns]`` through one flat view of its memory: ``index_select`` is several times faster."""
    span = sum((size - 1) * stride for size, stride in zip(block.shape, block.stride(), strict=True)) + 1
    flat = block.as_strided((span,), (1,))
    return flat.index_select(0, rows * block.stride(0) + columns * block.stride(1))


def _buckets(
    tile: torch.Tensor, low: torch.Tensor, scale: torch.Tensor, clean: bool, positions: torch.Tensor, keys: torch.Tensor
) -> torch.Tensor:
    """Each value's bucket (``low``, ``scale`` broadcast along rows or columns): monotone in the value."""
    position = torch.sub(tile, low, out=positions)
    position.mul_(scale).clamp_(0, BUCKETS - 1)
    if clean:
        position.nan_to_num_(0.0)
    # floor is trunc here (position >= 0), and vectorised where trunc is not
    return keys.copy_(position.floor_())  # the bucket index, also left in ``positions`` as a float


def _target(
    counts: torch.Tensor, below: torch.Tensor, k: int, m: int, limit: int, usable: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per group (row or column) of ``m`` values: the bucket holding its k-th largest, the rank in it, its size."""
    # from_bottom[:, b]: values in buckets <= b. The k-th largest is in the first bucket b with
    # from_bottom[b] > m - k, i.e. after the buckets whose cumulative count is still <= m - k.
    from_bottom = counts.cumsum(1)
    target = torch.searchsorted(from_bottom, below, right=True)
    inside = counts.gather(1, target)[:, 0]
    rank = k - (m - from_bottom.gather(1, target)[:, 0])  # the rank-th largest of its bucket
    crowded = (inside > limit) | ~usable
    return target[:, 0], rank, inside, crowded


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
    sample = values[:, :: max(1, m // SAMPLES)].contiguous()  # one strided read, then in cache
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
