"""The hard loss's exact selection: each row's (and column's) k-th largest by counting, against ``torch.topk``.

The counting selection (``engine/select.py``) must give the very float ``topk`` gives as the k-th value, on any
data: ties, duplicates, ``-inf`` (excluded entries), ``+inf``, values far outside the sampled range, rows of
one value; and the hard loss built on it must keep the same negatives as the dense top-k form.
"""

import math

import pytest
import torch

import aligniform as af
from aligniform.losses.engine import hardest_logsumexp, hardest_logsumexp_both, kept_negatives, select
from aligniform.losses.engine.select import kth_largest, kth_largest_columns
from tests.support.sphere import noisy_pairs, unit_rows


def _topk_kth(values, k):
    return values.topk(k, dim=1).values[:, -1]


def _adversarial(kind, n, m, dtype, generator):
    values = torch.randn(n, m, generator=generator, dtype=dtype)
    if kind == "equal_blocks":  # long runs of equal values: every threshold sits in a tie
        values = (values * 3).floor()
    elif kind == "two_values":
        values = torch.where(values > 0.3, 1.0, -1.0).to(dtype)
    elif kind == "constant_rows":
        values[::2] = 0.5
    elif kind == "neg_inf":  # excluded entries, many of them, and one row almost all -inf
        values[:, ::3] = -math.inf
        values[0, 1:] = -math.inf
    elif kind == "pos_inf":
        values[:, 5::11] = math.inf
    elif kind == "huge_range":  # a few enormous values and tiny ones: the sampled range misses the outliers
        values = values * 1e-30
        values[:, 7] = 3e38 if dtype == torch.float32 else 1e300
        values[:, 8] = -3e38 if dtype == torch.float32 else -1e300
    elif kind == "outliers":  # a cluster far above the rest, off the sample's stride
        values[:, 1:m:97] += 1e6
    elif kind == "duplicates":
        values = torch.cat([values[:, : m // 2], values[:, : m - m // 2]], 1)
    elif kind == "subnormal_spread":  # a range so narrow that BUCKETS / width overflows
        values = torch.randint(0, 3, (n, m), generator=generator).to(dtype) * torch.finfo(dtype).smallest_normal / 2**20
    elif kind == "tiny_spread":  # every value within a few ulps of 1
        values = 1 + torch.randint(-3, 4, (n, m), generator=generator).to(dtype) * torch.finfo(dtype).eps
    return values


KINDS = [
    "random",
    "equal_blocks",
    "two_values",
    "constant_rows",
    "neg_inf",
    "pos_inf",
    "huge_range",
    "outliers",
    "duplicates",
    "tiny_spread",
    "subnormal_spread",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kth_largest_equals_topk_on_adversarial_rows(kind, dtype, monkeypatch):
    monkeypatch.setattr(select, "SWEEP_ELEMENTS", 3000)  # several tiles of rows, the last one short
    generator = torch.Generator().manual_seed(KINDS.index(kind))
    for n, m in [(1, 512), (7, 700), (13, 1031)]:
        values = _adversarial(kind, n, m, dtype, generator)
        ranks = {1, 2, select.DIRECT_RANK, select.DIRECT_RANK + 1, m // 13, m // 3, m // 2, m - 40, m - 1, m}
        for k in sorted(ranks):
            assert torch.equal(kth_largest(values, k), _topk_kth(values, k)), (kind, n, m, k)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kth_largest_columns_equals_topk_on_adversarial_columns(kind, dtype, monkeypatch):
    # The same data as the rows' test, as columns: read in slabs of columns (several, the last one narrow).
    monkeypatch.setattr(select, "SLAB_ELEMENTS", 3000)
    generator = torch.Generator().manual_seed(KINDS.index(kind))
    for m, n in [(1, 512), (7, 700), (13, 1031)]:
        values = _adversarial(kind, m, n, dtype, generator).T.contiguous()  # n rows, m columns
        ranks = {1, 2, select.DIRECT_RANK, select.DIRECT_RANK + 1, n // 13, n // 3, n // 2, n - 40, n - 1, n}
        for k in sorted(ranks):
            assert torch.equal(kth_largest_columns(values, k), _topk_kth(values.T, k)), (kind, n, m, k)


def test_kth_largest_columns_counts_on_a_strided_block():
    # Columns of a block of a larger matrix (not contiguous), at the hard loss's height, several default slabs.
    generator = torch.Generator().manual_seed(1)
    values = torch.randn(4096, 700, generator=generator)
    values[torch.arange(600), torch.arange(600)] = -math.inf
    block = values[:, 50:650]
    for k in [33, 41, 328, 1229, 2048, 4000]:
        assert torch.equal(kth_largest_columns(block, k), _topk_kth(block.T, k)), k


def test_kth_largest_counts_on_wide_random_rows():
    # The counting path at the hard loss's shape: M = 4096, every rank class, several default tiles.
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(70, 4096, generator=generator)
    values[torch.arange(70), torch.arange(70)] = -math.inf  # the positives, excluded
    for k in [33, 41, 328, 1229, 2048, 4000]:
        assert torch.equal(kth_largest(values, k), _topk_kth(values, k)), k


def _dense_mask(logits, kept):
    """The rule the losses document: the ``kept`` largest negatives of each row, plus ties at the threshold."""
    negatives = logits.masked_fill(torch.eye(logits.shape[0], dtype=torch.bool), -math.inf)
    return negatives >= negatives.topk(kept, dim=1).values[:, -1:]


@pytest.mark.parametrize("n", [600, 1100])
@pytest.mark.parametrize("alpha", [0.001, 0.01, 0.08, 0.3, 0.5, 0.97, 0.999])
def test_both_directions_keep_the_dense_top_k_set(n, alpha):
    # Duplicated rows and columns: tied logits at every threshold; float32 as the losses run.
    generator = torch.Generator().manual_seed(n)
    rows = unit_rows(n, 6, generator, torch.float32) / 0.1
    columns = unit_rows(n, 6, generator, torch.float32)
    columns[n // 2 : n // 2 + 50] = columns[:50]
    rows[n // 3 : n // 3 + 40] = rows[:40]
    kept = kept_negatives(alpha, n - 1)
    row_part, column_part = hardest_logsumexp_both(rows, columns, kept)
    logits = rows @ columns.T
    for part, dense in ((row_part, logits), (column_part, logits.T)):
        keep = _dense_mask(dense, kept)
        assert (keep.sum(1) >= kept).all()
        expected = torch.logsumexp(dense.masked_fill(~keep, -math.inf), 1)
        torch.testing.assert_close(part, expected)


@pytest.mark.parametrize("alpha", [0.001, 0.3, 0.999])
def test_one_direction_with_queue_keeps_the_dense_top_k_set(alpha):
    generator = torch.Generator().manual_seed(7)
    rows, columns = unit_rows(50, 4, generator), unit_rows(900, 4, generator)
    columns[450:] = columns[:450]  # every candidate twice
    kept = kept_negatives(alpha, 899)
    logits = rows @ columns.T
    positive = torch.zeros_like(logits, dtype=torch.bool)
    positive[torch.arange(50), torch.arange(50) + 3] = True
    negatives = logits.masked_fill(positive, -math.inf)
    keep = negatives >= negatives.topk(kept, dim=1).values[:, -1:]
    expected = torch.logsumexp(negatives.masked_fill(~keep, -math.inf), 1)
    torch.testing.assert_close(hardest_logsumexp(rows, columns, kept, 3, block_rows=16), expected)


def _plain_top_k(x, y, tau, alpha):
    """The symmetric hard loss written densely from one logit matrix: ``topk`` of each row's and column's negatives.

    Both directions read the same floats (``l`` and its transpose), as the loss does: with duplicated pairs the
    negatives tie exactly, and two separately rounded matrices could break those ties differently.
    """
    n = x.shape[0]
    kept = kept_negatives(alpha, n - 1)
    logits = (x / tau) @ y.T
    terms = []
    for dense in (logits, logits.T):
        positive = dense.diagonal()
        negatives = dense.masked_fill(torch.eye(n, dtype=torch.bool), -math.inf)
        threshold = negatives.detach().topk(kept, dim=1).values[:, -1:]
        negatives = negatives.masked_fill(negatives < threshold, -math.inf)
        terms.append(torch.logaddexp(torch.logsumexp(negatives, 1), positive) - positive)
    return torch.cat(terms).mean()


@pytest.mark.parametrize("alpha", [0.001, 0.05, 0.3, 0.999])
def test_hard_loss_equals_plain_top_k_form_with_duplicates(alpha):
    generator = torch.Generator().manual_seed(3)
    x, y = noisy_pairs(700, 8, 0.3, generator)
    x[600:], y[600:] = x[:100], y[:100]  # duplicate pairs: tied negatives
    x.requires_grad_(True)
    value = af.hard_contrastive_loss(x, y, 0.2, alpha)
    expected = _plain_top_k(x, y, 0.2, alpha)
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12)
    got, want = (torch.autograd.grad(v, x)[0] for v in (value, expected))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
