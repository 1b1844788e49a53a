"""Uniformity loss (Wang & Isola 2020): float64 references, queue forms, tiling and stability."""

import pytest
import torch
import torch.nn.functional as F

import aligniform as af
from aligniform.losses.engine import logsumexp as pairwise
from tests.support import reference as ref
from tests.support.forms import SIZES
from tests.support.sphere import sphere


@pytest.mark.parametrize("n,d", SIZES)
@pytest.mark.parametrize("t", [0.5, 2.0, 8.0])
def test_uniform_matches_reference(n, d, t):
    x = sphere(n, d, seed=n)
    assert af.uniform_loss(x, t).item() == pytest.approx(ref.uniform(x, t), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("intra_batch", [True, False])
@pytest.mark.parametrize("k", [1, 7])
def test_uniform_with_queue_matches_reference(intra_batch, k):
    x, queue = sphere(9, 5, seed=1), sphere(k, 5, seed=2)
    expected = ref.uniform(x, 2.0, queue=queue, intra_batch=intra_batch)
    assert af.uniform_loss(x, 2.0, queue=queue, intra_batch=intra_batch).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("n", [2, 7, 64, 100, 257])
@pytest.mark.parametrize("block_rows", [1, 3, 16, 64, None])
@pytest.mark.parametrize("keep_tiles", [True, False])
def test_tiled_uniform_equals_plain_pdist_form(n, block_rows, keep_tiles, monkeypatch):
    if not keep_tiles:  # the large-N path: backward recomputes every tile
        monkeypatch.setattr(pairwise, "SAVED_ELEMENTS", 0)
    x = sphere(n, 6, seed=n).requires_grad_()
    plain = torch.pdist(x).pow(2).mul(-2).exp().mean().log()
    tiled = af.uniform_loss(x, 2.0, block_rows=block_rows)
    assert tiled.item() == pytest.approx(plain.item(), abs=1e-6)
    (plain_grad,) = torch.autograd.grad(plain, x)
    (tiled_grad,) = torch.autograd.grad(tiled, x)
    torch.testing.assert_close(tiled_grad, plain_grad, atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("keep_tiles", [True, False])
def test_uniform_queue_tiling_matches_single_block(keep_tiles, monkeypatch):
    if not keep_tiles:
        monkeypatch.setattr(pairwise, "SAVED_ELEMENTS", 0)
    x, queue = sphere(23, 4, seed=3).requires_grad_(), sphere(11, 4, seed=4)
    whole = af.uniform_loss(x, 3.0, queue=queue)
    tiled = af.uniform_loss(x, 3.0, queue=queue, block_rows=4)
    assert tiled.item() == pytest.approx(whole.item(), abs=1e-12)
    torch.testing.assert_close(torch.autograd.grad(tiled, x)[0], torch.autograd.grad(whole, x)[0])


def test_uniform_finite_at_large_t_where_naive_form_underflows():
    # Orthonormal rows: every pair at squared distance 2, so exp(-2t) = exp(-128) underflows float32.
    x = torch.eye(64, dtype=torch.float32)[torch.randperm(64)].requires_grad_()
    naive = torch.pdist(x).pow(2).mul(-64.0).exp().mean().log()
    stable = af.uniform_loss(x, 64.0)
    assert torch.isinf(naive)
    assert torch.isfinite(stable)
    assert stable.item() == pytest.approx(-128.0, rel=1e-6)
    stable.backward()
    assert torch.isfinite(x.grad).all()


def test_collapsed_features_give_zero_uniformity_with_finite_gradient():
    x = F.normalize(torch.ones(32, 8), dim=1).requires_grad_()
    loss = af.uniform_loss(x, 2.0)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(x.grad).all()


def test_uniform_large_batch_uses_blocks_and_matches_sampled_estimate():
    # 8192 rows: the default tiling splits this into several blocks.
    x = sphere(8192, 16, seed=0, dtype=torch.float32).requires_grad_()
    loss = af.uniform_loss(x, 2.0)
    loss.backward()
    sampled = af.metrics.uniformity(x.detach(), 2.0, max_pairs=400_000)
    assert loss.item() == pytest.approx(sampled, abs=0.02)
    assert torch.isfinite(x.grad).all()
