"""The tiled engines against dense matrices: every mask, offset, tile shape and numerical path."""

import math

import pytest
import torch

from aligniform.losses.engine import (
    hardest_logsumexp,
    hardest_logsumexp_both,
    hardest_negatives_mask,
    kept_negatives,
    tiled_logsumexp,
)
from aligniform.losses.engine import logsumexp as tiles
from aligniform.losses.engine.select import kth_largest
from tests.losses.plain import exact_kept
from tests.support.sphere import unit_rows


def _dense_logits(rows, columns, mask, offset, clamp_max=None):
    logits = rows @ columns.T
    if clamp_max is not None:
        logits = logits.clamp_max(clamp_max)
    i = torch.arange(rows.shape[0])[:, None] + offset
    j = torch.arange(columns.shape[0])[None]
    if mask == "diagonal":
        logits = logits.masked_fill(j == i, -math.inf)
    elif mask == "upper":
        logits = logits.masked_fill(j <= i, -math.inf)
    return logits


def _finite_weighted_sum(values, weights):
    finite = torch.isfinite(values)
    return (values[finite] * weights[finite]).sum()


@pytest.fixture(params=["unshifted", "shifted"])
def path(request, monkeypatch):
    """Run a test through both numerical paths: unshifted exp (with kept tiles) and per-tile maxima."""
    if request.param == "shifted":
        monkeypatch.setattr(tiles, "UNSHIFTED_LIMIT", {})
    return request.param


@pytest.mark.parametrize("mask", ["none", "diagonal", "upper"])
@pytest.mark.parametrize("offset", [0, 3, -2])
@pytest.mark.parametrize("blocks", [(None, None), (3, 4), (1, 1), (7, 2), (4, 100)])
@pytest.mark.parametrize("keep_tiles", [True, False])
def test_tiled_logsumexp_equals_dense_rows_and_columns(mask, offset, blocks, keep_tiles, path, monkeypatch):
    if not keep_tiles:
        monkeypatch.setattr(tiles, "SAVED_ELEMENTS", 0)
    generator = torch.Generator().manual_seed(offset + 7)
    rows = torch.randn(11, 5, generator=generator, dtype=torch.float64).requires_grad_()
    columns = torch.randn(9, 5, generator=generator, dtype=torch.float64).requires_grad_()
    row_lse, column_lse = tiled_logsumexp(
        rows, columns, column_lse=True, mask=mask, offset=offset, block_rows=blocks[0], block_columns=blocks[1]
    )
    logits = _dense_logits(rows, columns, mask, offset)
    dense_rows, dense_columns = torch.logsumexp(logits, 1), torch.logsumexp(logits, 0)
    torch.testing.assert_close(row_lse, dense_rows, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(column_lse, dense_columns, rtol=1e-12, atol=1e-12)
    # A loss using both outputs with arbitrary weights: every gradient matches the dense one.
    a, b = torch.randn(11, generator=generator, dtype=torch.float64), torch.randn(9, generator=generator).double()
    tiled = _finite_weighted_sum(row_lse, a) + _finite_weighted_sum(column_lse, b)
    dense = _finite_weighted_sum(dense_rows, a) + _finite_weighted_sum(dense_columns, b)
    for got, want in zip(torch.autograd.grad(tiled, (rows, columns)), torch.autograd.grad(dense, (rows, columns))):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("want", [(True, False), (False, True)])
def test_one_direction_only_and_columns_without_gradient(want, path):
    rows = torch.randn(13, 4, dtype=torch.float64).requires_grad_()
    columns = torch.randn(6, 4, dtype=torch.float64)  # a queue: no gradient wanted
    row_lse, column_lse = tiled_logsumexp(rows, columns, row_lse=want[0], column_lse=want[1], block_rows=5)
    assert (row_lse is None) != want[0] and (column_lse is None) != want[1]
    value = (row_lse if want[0] else column_lse).sum()
    dense = torch.logsumexp(rows @ columns.T, 1 if want[0] else 0).sum()
    torch.testing.assert_close(value, dense)
    torch.testing.assert_close(torch.autograd.grad(value, rows)[0], torch.autograd.grad(dense, rows)[0])


def test_gradcheck_engine(path):
    rows = torch.randn(7, 3, dtype=torch.float64).requires_grad_()
    columns = torch.randn(7, 3, dtype=torch.float64).requires_grad_()

    def both(r, c):
        row_lse, column_lse = tiled_logsumexp(r, c, column_lse=True, mask="diagonal", block_rows=3, block_columns=2)
        return row_lse, column_lse

    assert torch.autograd.gradcheck(both, (rows, columns))


def test_shifted_path_is_exact_where_unshifted_exp_would_overflow():
    # Logits of ±1000: exp overflows float64, the per-tile maxima do not.
    rows = torch.tensor([[1000.0], [-1000.0], [3.0]], dtype=torch.float64)
    columns = torch.tensor([[1.0], [0.5], [-1.0]], dtype=torch.float64)
    row_lse, column_lse = tiled_logsumexp(rows, columns, column_lse=True, block_rows=1, block_columns=2)
    logits = rows @ columns.T
    torch.testing.assert_close(row_lse, torch.logsumexp(logits, 1))
    torch.testing.assert_close(column_lse, torch.logsumexp(logits, 0))


def test_float32_unshifted_path_matches_float64():
    rows = torch.nn.functional.normalize(torch.randn(300, 16), dim=1) / 0.05  # |logit| <= 20
    columns = torch.nn.functional.normalize(torch.randn(200, 16), dim=1)
    row_lse, column_lse = tiled_logsumexp(rows, columns, column_lse=True, block_rows=64, block_columns=64)
    logits = rows.double() @ columns.double().T
    torch.testing.assert_close(row_lse.double(), torch.logsumexp(logits, 1), rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(column_lse.double(), torch.logsumexp(logits, 0), rtol=1e-6, atol=1e-5)


def test_engine_rejects_mismatched_widths_and_bad_mask():
    with pytest.raises(ValueError, match="rows and columns"):
        tiled_logsumexp(torch.randn(3, 2), torch.randn(3, 4))
    with pytest.raises(ValueError, match="mask"):
        tiled_logsumexp(torch.randn(3, 2), torch.randn(3, 2), mask="lower")  # type: ignore[arg-type]


# ---------------------------------------------------------------- hardest negatives


def test_kept_negatives_is_exact_on_the_whole_grid():
    # alpha on a 0.01 grid and M <= 4096: float ceil(alpha * M) is off by one in 586 of these cases.
    wrong_in_float = 0
    for hundredths in range(1, 101):
        alpha = hundredths / 100
        for m in range(1, 4097):
            exact = max(1, -((-hundredths * m) // 100))
            assert kept_negatives(alpha, m) == exact, (alpha, m)
            wrong_in_float += max(1, math.ceil(alpha * m)) != exact
    assert wrong_in_float > 0  # the grid does exercise the old bug
    assert kept_negatives(0.07, 100) == 7


@pytest.mark.parametrize("offset", [0, None, 2])
def test_hardest_negatives_mask_keeps_the_exact_count(offset):
    similarity = torch.randn(6, 101, dtype=torch.float64)
    mask = hardest_negatives_mask(similarity, 0.07, positive_offset=offset)
    negatives = 101 - (offset is not None)
    assert (mask.sum(1) == exact_kept(0.07, negatives)).all()
    if offset is not None:
        assert not mask[torch.arange(6), torch.arange(6) + offset].any()


@pytest.mark.parametrize("reduction", ["logsumexp", "sum"])
@pytest.mark.parametrize("offset", [0, None, 3])
@pytest.mark.parametrize("alpha", [0.01, 0.07, 0.3, 0.5])
@pytest.mark.parametrize("block_rows", [None, 1, 4])
def test_hardest_logsumexp_equals_dense_mask(reduction, offset, alpha, block_rows):
    generator = torch.Generator().manual_seed(5)
    rows = torch.randn(10, 4, generator=generator, dtype=torch.float64).requires_grad_()
    columns = torch.randn(23, 4, generator=generator, dtype=torch.float64).requires_grad_()
    kept = exact_kept(alpha, 23 - (offset is not None))
    value = hardest_logsumexp(rows, columns, kept, offset, reduction, block_rows)
    logits = rows @ columns.T
    keep = hardest_negatives_mask(logits, alpha, positive_offset=offset)
    if reduction == "logsumexp":
        dense = torch.logsumexp(logits.masked_fill(~keep, -math.inf), 1)
    else:
        dense = (logits * keep).sum(1)
    torch.testing.assert_close(value, dense, rtol=1e-12, atol=1e-12)
    weights = torch.randn(10, generator=generator, dtype=torch.float64)
    got = torch.autograd.grad((value * weights).sum(), (rows, columns))
    want = torch.autograd.grad((dense * weights).sum(), (rows, columns))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_hardest_blocks_default_size_splits_large_rows(monkeypatch):
    monkeypatch.setattr(tiles, "BLOCK_ELEMENTS", 50)  # 2 rows of 23 candidates per block (one tiling policy)
    rows, columns = torch.randn(9, 3, dtype=torch.float64), torch.randn(23, 3, dtype=torch.float64)
    whole = hardest_logsumexp(rows, columns, 4, 0, "logsumexp", block_rows=9)
    torch.testing.assert_close(hardest_logsumexp(rows, columns, 4, 0), whole)


# ---------------------------------------------------------------- exact selection by bucket counts


def _rows_of_kind(kind, n, m, dtype, generator):
    values = torch.randn(n, m, generator=generator, dtype=dtype)
    if kind == "rounded":  # many ties
        values = values.round(decimals=1)
    elif kind == "few_values":  # every row a handful of distinct values: ties at any threshold
        values = torch.randint(0, 3, (n, m), generator=generator).to(dtype)
    elif kind == "collapsed":  # one row constant (its bucket holds every value: the kthvalue fallback)
        values[0] = 0.25
    elif kind == "infinite":  # -inf entries (rows with an infinite range fall back too)
        values[:, ::7] = -math.inf
    elif kind == "duplicates":  # each value twice
        values = torch.cat([values[:, : m // 2], values[:, : m - m // 2]], 1)
    elif kind == "clustered":  # a dense cluster at the top: the threshold's bucket is crowded for small alpha
        values[:, : m // 4] = 5 + 1e-6 * values[:, : m // 4]
    return values


@pytest.mark.parametrize(
    "kind", ["random", "rounded", "few_values", "collapsed", "infinite", "duplicates", "clustered"]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kth_largest_equals_kthvalue(kind, dtype):
    generator = torch.Generator().manual_seed(11)
    for n, m in [(1, 512), (3, 700), (9, 2049)]:
        values = _rows_of_kind(kind, n, m, dtype, generator)
        for k in sorted({1, 2, m // 100 + 1, m // 13, m // 3, m // 2, m - 1, m}):
            expected = values.kthvalue(m - k + 1, 1).values
            assert torch.equal(kth_largest(values, k), expected), (n, m, k)


@pytest.mark.parametrize("alpha", [0.01, 0.08, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("n", [1, 2, 3, 257])
@pytest.mark.parametrize("offset", [0, None])
def test_hardest_logsumexp_wide_rows_equal_dense_mask(alpha, n, offset):
    # 600 candidates: the bucket-count selection (narrow rows take kthvalue directly), float32 as the losses run.
    generator = torch.Generator().manual_seed(n)
    rows = unit_rows(n, 8, generator, torch.float32) / 0.1
    columns = unit_rows(600, 8, generator, torch.float32)
    columns[300:400] = columns[200:300]  # duplicated candidates: tied logits
    kept = exact_kept(alpha, 600 - (offset is not None))
    logits = rows @ columns.T
    keep = hardest_negatives_mask(logits, alpha, positive_offset=offset)
    dense = torch.logsumexp(logits.masked_fill(~keep, -math.inf), 1)
    value = hardest_logsumexp(rows, columns, kept, offset, "logsumexp", block_rows=100)
    torch.testing.assert_close(value, dense)
    summed = hardest_logsumexp(rows, columns, kept, offset, "sum")
    torch.testing.assert_close(summed, (logits * keep).sum(1), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("reduction", ["logsumexp", "sum"])
def test_hardest_logsumexp_wide_rows_gradcheck(reduction):
    generator = torch.Generator().manual_seed(3)
    rows = torch.randn(5, 3, generator=generator, dtype=torch.float64).requires_grad_()
    columns = torch.randn(520, 3, generator=generator, dtype=torch.float64).requires_grad_()
    torch.autograd.gradcheck(lambda r, c: hardest_logsumexp(r, c, 40, 2, reduction), (rows, columns))


@pytest.mark.parametrize("reduction", ["logsumexp", "sum"])
@pytest.mark.parametrize("n,alpha", [(2, 0.5), (3, 0.3), (257, 0.08), (600, 0.01), (600, 0.3)])
@pytest.mark.parametrize("scale", [1.0, 300.0])  # 300: logits past UNSHIFTED_LIMIT, the shifted path
def test_hardest_both_directions_equal_two_calls(reduction, n, alpha, scale):
    generator = torch.Generator().manual_seed(n)
    rows = (scale * torch.randn(n, 5, generator=generator, dtype=torch.float64)).requires_grad_()
    columns = torch.randn(n, 5, generator=generator, dtype=torch.float64).requires_grad_()
    kept = exact_kept(alpha, n - 1)
    both = hardest_logsumexp_both(rows, columns, kept, reduction)
    apart = (hardest_logsumexp(rows, columns, kept, 0, reduction), hardest_logsumexp(columns, rows, kept, 0, reduction))
    for got, want in zip(both, apart):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    weights = torch.randn(2, n, generator=generator, dtype=torch.float64)
    got = torch.autograd.grad((torch.stack(both) * weights).sum(), (rows, columns))
    want = torch.autograd.grad((torch.stack(apart) * weights).sum(), (rows, columns))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
