"""Every loss against its slow reference formula, plus gradcheck, stability and invariances."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import aligniform as af
from aligniform.losses.engine import logsumexp as pairwise
from tests.support import reference as ref
from tests.support.sphere import positive_pairs, sphere

SIZES = [(2, 3), (5, 4), (17, 8), (33, 16)]


@pytest.mark.parametrize("n,d", SIZES)
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0])
def test_align_matches_reference(n, d, alpha):
    x, y = positive_pairs(n, d, seed=n)
    assert af.align_loss(x, y, alpha).item() == pytest.approx(ref.align(x, y, alpha), rel=1e-12, abs=1e-14)


def test_align_alpha2_is_two_minus_two_cosine():
    x, y = positive_pairs(50, 8)
    assert af.align_loss(x, y).item() == pytest.approx(2 - 2 * (x * y).sum(1).mean().item(), abs=1e-12)


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


@pytest.mark.parametrize("n,d", SIZES)
@pytest.mark.parametrize("tau", [0.05, 0.2, 1.0])
def test_contrastive_matches_reference(n, d, tau):
    x, y = positive_pairs(n, d, seed=n)
    assert af.contrastive_loss(x, y, tau).item() == pytest.approx(ref.contrastive(x, y, tau), rel=1e-10)


def test_contrastive_with_queue_matches_reference():
    x, y = positive_pairs(6, 5)
    queue = sphere(10, 5, seed=9)
    expected = ref.contrastive(x, y, 0.3, queue)
    assert af.contrastive_loss(x, y, 0.3, queue=queue).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("n,d", SIZES[1:])
@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_hard_contrastive_matches_reference(n, d, alpha, tau):
    x, y = positive_pairs(n, d, seed=n)
    expected = ref.hard_contrastive(x, y, tau, alpha)
    assert af.hard_contrastive_loss(x, y, tau, alpha).item() == pytest.approx(expected, rel=1e-10)


def test_hard_contrastive_with_queue_and_alpha_one_equals_contrastive():
    x, y = positive_pairs(12, 6)
    queue = sphere(9, 6, seed=5)
    expected = ref.hard_contrastive(x, y, 0.2, 0.25, queue)
    assert af.hard_contrastive_loss(x, y, 0.2, 0.25, queue=queue).item() == pytest.approx(expected, rel=1e-10)
    torch.testing.assert_close(af.hard_contrastive_loss(x, y, 0.2, 1.0), af.contrastive_loss(x, y, 0.2))


@pytest.mark.parametrize("hard_alpha", [None, 0.2, 0.5])
@pytest.mark.parametrize("lam", [0.01, 1.0])
def test_simple_matches_reference(hard_alpha, lam):
    x, y = positive_pairs(15, 7)
    expected = ref.simple(x, y, lam, hard_alpha)
    assert af.simple_loss(x, y, lam, hard_alpha).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("n,d", SIZES)
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_asymptotic_matches_reference(n, d, tau):
    x, y = positive_pairs(n, d, seed=n)
    assert af.asymptotic_contrastive_loss(x, y, tau).item() == pytest.approx(ref.asymptotic(x, y, tau), rel=1e-10)


def test_contrastive_minus_log_m_converges_to_asymptotic_form():
    # Theorem 1: with features from a fixed distribution, L - log M approaches the limit as M grows.
    gaps = []
    for n in (16, 256, 2048):
        x, y = positive_pairs(n, 8, noise=0.5, seed=1, dtype=torch.float64)
        limit = af.asymptotic_contrastive_loss(x, y, 0.5).item()
        gaps.append(abs(af.contrastive_loss(x, y, 0.5).item() - math.log(n - 1) - limit))
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 2e-3


# ---------------------------------------------------------------- gradients


def _gradcheck_inputs(n=6, d=4):
    x, y = positive_pairs(n, d, seed=3)
    return x.clone().requires_grad_(), y.clone().requires_grad_()


def _queue_like(x, k=5):
    return sphere(k, x.shape[1], seed=7, dtype=x.dtype)


LOSSES = {
    "align_a2": lambda x, y: af.align_loss(x, y, 2.0),
    "align_a1": lambda x, y: af.align_loss(x, y, 1.0),
    "align_a1.5": lambda x, y: af.align_loss(x, y, 1.5),
    "uniform": lambda x, y: af.uniform_loss(x, 2.0),
    "uniform_tiled": lambda x, y: af.uniform_loss(x, 3.0, block_rows=2),
    "uniform_queue": lambda x, y: af.uniform_loss(x, 2.0, queue=_queue_like(x)),
    "uniform_two_view": lambda x, y: af.UniformLoss(t=2)(x, y),
    "contrastive": lambda x, y: af.contrastive_loss(x, y, 0.5),
    "contrastive_queue": lambda x, y: af.contrastive_loss(x, y, 0.5, queue=_queue_like(x)),
    "hard_contrastive": lambda x, y: af.hard_contrastive_loss(x, y, 0.5, 0.4),
    "simple": lambda x, y: af.simple_loss(x, y, 0.3),
    "hard_simple": lambda x, y: af.simple_loss(x, y, 0.3, hard_alpha=0.4),
    "asymptotic": lambda x, y: af.asymptotic_contrastive_loss(x, y, 0.5),
    "asymptotic_queue": lambda x, y: af.asymptotic_contrastive_loss(x, y, 0.5, queue=_queue_like(x)),
    "moco": lambda x, y: af.contrastive_loss(x, y, 0.5, queue=_queue_like(x), symmetric=False),
    "hard_moco": lambda x, y: af.hard_contrastive_loss(x, y, 0.5, 0.4, queue=_queue_like(x), symmetric=False),
    "hard_simple_queue": lambda x, y: af.simple_loss(x, y, 0.3, hard_alpha=0.4, queue=_queue_like(x)),
    "nt_xent": lambda x, y: af.losses.nt_xent_loss(x, y, 0.5),
    "objective": lambda x, y: af.Objective.parse("0.98*align(alpha=2) + 0.96*uniform(t=2)")(x, y),
    "normalize": lambda x, y: af.uniform_loss(3 * x, normalize=True) + af.align_loss(2 * x, y, normalize=True),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradcheck_float64(name):
    assert torch.autograd.gradcheck(LOSSES[name], _gradcheck_inputs(), eps=1e-6, atol=1e-6)


# ---------------------------------------------------------------- stability


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


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_float32_t8_spread_features_finite(name):
    x, y = positive_pairs(128, 32, noise=1.0, dtype=torch.float32)
    x.requires_grad_()
    loss = LOSSES[name](x, y) + af.uniform_loss(x, 8.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_close_to_float32(dtype):
    torch.manual_seed(0)
    encoder = torch.nn.Linear(32, 16)
    inputs = torch.randn(64, 32)
    views = inputs + 0.1 * torch.randn(64, 32)
    objective = af.Objective.parse("contrastive(tau=0.2) + align(alpha=2) + uniform(t=2)")
    full = objective(F.normalize(encoder(inputs), dim=1), F.normalize(encoder(views), dim=1))
    with torch.autocast("cpu", dtype=dtype):
        x, y = F.normalize(encoder(inputs), dim=1), F.normalize(encoder(views), dim=1)
        low = objective(x, y)
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(full.item(), rel=2e-2)


def test_collapsed_features_give_zero_uniformity_with_finite_gradient():
    x = F.normalize(torch.ones(32, 8), dim=1).requires_grad_()
    loss = af.uniform_loss(x, 2.0)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_duplicate_rows_do_not_produce_nan(name):
    row = F.normalize(torch.randn(1, 4, dtype=torch.float64), dim=1)
    x = row.repeat(6, 1).requires_grad_()
    y = x.detach().clone().requires_grad_()  # positive pairs identical too: alpha < 2 at distance 0
    loss = LOSSES[name](x, y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(v.grad).all() for v in (x, y) if v.grad is not None)


# ---------------------------------------------------------------- invariances (hypothesis)


def _orthogonal(d, seed):
    q, r = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 24), d=st.integers(2, 9), seed=st.integers(0, 10_000))
def test_rotation_and_permutation_invariance(n, d, seed):
    x, y = positive_pairs(n, d, seed=seed)
    rotation = _orthogonal(d, seed)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    for loss in (LOSSES["align_a2"], LOSSES["uniform"], LOSSES["contrastive"], LOSSES["hard_contrastive"]):
        base = loss(x, y).item()
        assert loss(x @ rotation, y @ rotation).item() == pytest.approx(base, rel=1e-9, abs=1e-12)
        assert loss(x[order], y[order]).item() == pytest.approx(base, rel=1e-9, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 30), d=st.integers(1, 8), t=st.floats(0.1, 10), alpha=st.floats(0.2, 4), seed=st.integers(0, 999)
)
def test_loss_ranges(n, d, t, alpha, seed):
    x, y = positive_pairs(n, d, noise=2.0, seed=seed)
    uniform = af.uniform_loss(x, t).item()
    align = af.align_loss(x, y, alpha).item()
    assert -4 * t - 1e-9 <= uniform <= 1e-12
    assert -1e-12 <= align <= 2**alpha + 1e-9


# ---------------------------------------------------------------- modules and large batches


def test_modules_equal_functions():
    x, y = positive_pairs(20, 6)
    assert af.AlignLoss(alpha=1)(x, y) == af.align_loss(x, y, 1)
    assert af.UniformLoss(t=3)(x) == af.uniform_loss(x, 3)
    assert af.UniformLoss(t=3)(x, y) == (af.uniform_loss(x, 3) + af.uniform_loss(y, 3)) / 2
    assert af.ContrastiveLoss(tau=0.3)(x, y) == af.contrastive_loss(x, y, 0.3)
    assert af.HardContrastiveLoss(tau=0.3, alpha=0.2)(x, y) == af.hard_contrastive_loss(x, y, 0.3, 0.2)
    assert af.SimpleLoss(lam=0.1, hard_alpha=0.5)(x, y) == af.simple_loss(x, y, 0.1, 0.5)
    assert af.AsymptoticContrastiveLoss(tau=0.3)(x, y) == af.asymptotic_contrastive_loss(x, y, 0.3)


def test_uniform_large_batch_uses_blocks_and_matches_sampled_estimate():
    # 8192 rows: the default tiling splits this into several blocks.
    x = sphere(8192, 16, seed=0, dtype=torch.float32).requires_grad_()
    loss = af.uniform_loss(x, 2.0)
    loss.backward()
    sampled = af.metrics.uniformity(x.detach(), 2.0, max_pairs=400_000)
    assert loss.item() == pytest.approx(sampled, abs=0.02)
    assert torch.isfinite(x.grad).all()
