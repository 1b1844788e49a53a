"""Exact per-row k-th largest value by a bucket count, not a sort or quickselect of every row.

``kthvalue`` on a (rows × M) block copies and partially sorts every row: about ten GEMMs' time on a CPU at
M = 4096 (measured, docs/benchmarks.md), the hard loss's main cost. Here each row's range
``[min, max]`` is cut into ``BUCKETS`` equal buckets and one ``bincount`` over (row, bucket) keys counts every
row's values per bucket; a cumulative sum from the top names the bucket holding each row's k-th largest value
and how many values lie above it. Only that bucket's values (a few dozen per row for continuous data) are
gathered and sorted. The bucket index is a monotone function of the value within a row (rounding of a
product and a sum by positive factors keeps order), and counting and gathering read the same indices, so the
result is the exact k-th largest float, ties included, whatever the rounding of the bucket bounds. Rows whose
bucket holds too many values (a collapsed row, ``inf`` values) take ``kthvalue``: correct, not fast, so a
caller excluding an entry should overwrite it with the row's smallest value rather than ``-inf``.
"""

from __future__ import annotations

import torch

# Buckets per row: ~M/256 values per bucket on average; the bucket at a dense quantile holds a few times that.
BUCKETS = 256
# Rows narrower than this are selected by kthvalue directly: the counting would not pay for its passes.
DIRECT_COLUMNS = 2 * BUCKETS


def kth_largest(values: torch.Tensor, k: int) -> torch.Tensor:
    """Each row's ``k``-th largest entry (1 <= k <= columns), exactly, as ``values.kthvalue(M - k + 1, 1)``.

    Examples:
        >>> import torch
        >>> v = torch.randn(3, 1000, dtype=torch.float64)
        >>> bool((kth_largest(v, 80) == v.kthvalue(1000 - 80 + 1, 1).values).all())
        True
    """
    n, m = values.shape
    if m < DIRECT_COLUMNS or n == 0:
        return values.kthvalue(m - k + 1, 1).values
    low, high = values.amin(1), values.amax(1)
    width = high - low
    usable = torch.isfinite(width) & (width > 0)
    safe_width = torch.where(usable, width, torch.ones_like(width))
    # Position (value - low) · scale in [0, BUCKETS - 1 + 1/2]; the clamp catches -inf (an excluded positive)
    # and any rounding past either end. Unusable rows put everything in bucket 0 (and then take kthvalue).
    scale = torch.where(usable, (BUCKETS - 0.5) / safe_width, torch.zeros_like(width))
    shift = torch.where(usable, -low * scale, torch.zeros_like(width))
    position = torch.addcmul(shift[:, None], values, scale[:, None]).clamp_(0, BUCKETS - 1)
    if not bool(usable.all()):  # an infinite value times a zero scale is nan: send those rows to bucket 0
        position.nan_to_num_(0.0)
    bucket = position.to(torch.int32)
    del position
    bucket += (torch.arange(n, device=values.device, dtype=torch.int32) * BUCKETS)[:, None]
    counts = torch.bincount(bucket.view(-1), minlength=n * BUCKETS).view(n, BUCKETS)
    from_top = counts.flip(1).cumsum(1)  # from_top[:, j]: values in the top j + 1 buckets
    skipped = (from_top < k).sum(1)  # whole top buckets holding fewer than k values together
    target = BUCKETS - 1 - skipped
    above = torch.where(
        skipped > 0, from_top.gather(1, (skipped - 1).clamp_min(0)[:, None])[:, 0], torch.zeros_like(skipped)
    )
    inside = counts.gather(1, target[:, None])[:, 0]
    rank = k - above  # the wanted value is the rank-th largest of its bucket, 1 <= rank <= inside
    crowded = inside > 4 * m // BUCKETS + 64
    rows = torch.arange(n, device=values.device)
    key = torch.where(crowded, torch.full_like(target, -1), target + rows * BUCKETS).to(torch.int32)
    hit_rows, hit_columns = (bucket == key[:, None]).nonzero(as_tuple=True)
    del bucket
    out = values.new_empty(n)
    if hit_rows.numel():
        # Row-major order: each row's hits are contiguous; lay them out as a small padded matrix and sort it.
        kept = torch.where(crowded, torch.zeros_like(inside), inside)
        starts = kept.cumsum(0) - kept
        width_needed = int(kept.max())
        padded = values.new_full((n, width_needed), -torch.inf)
        padded[hit_rows, torch.arange(hit_rows.numel(), device=values.device) - starts[hit_rows]] = values[
            hit_rows, hit_columns
        ]
        ordered = padded.sort(1, descending=True).values
        out = ordered.gather(1, (rank - 1).clamp(0, width_needed - 1)[:, None])[:, 0]
    if bool(crowded.any()):
        out[crowded] = values[crowded].kthvalue(m - k + 1, 1).values
    return out
