"""Properties every loss shares: gradcheck, learnable temperatures, tiling, stability, invariances."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import aligniform as af
from aligniform.losses import nt_xent_loss
from aligniform.losses.engine import logsumexp as tiles
from tests.support.sphere import leaves, positive_pairs, sphere


def _gradcheck_inputs(n=6, d=4):
    x, y = positive_pairs(n, d, seed=3)
    return leaves(x, y)


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


def _orthogonal(d, seed):
    q, r = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def _queue_like(x, k=5):
    return sphere(k, x.shape[1], seed=7, dtype=x.dtype)


def _losses_with_queue(x, y, tau, queue):
    return {
        "contrastive": af.contrastive_loss(x, y, tau, queue),
        "moco": af.contrastive_loss(x, y, tau, queue, symmetric=False),
        "contrastive_no_queue": af.contrastive_loss(x, y, tau),
        "hard": af.hard_contrastive_loss(x, y, tau, 0.2, queue),
        "hard_moco": af.hard_contrastive_loss(x, y, tau, 0.2, queue, symmetric=False),
        "hard_simple": af.simple_loss(x, y, 0.1, 0.2, queue),
        "asymptotic": af.asymptotic_contrastive_loss(x, y, tau, queue=queue),
        "nt_xent": nt_xent_loss(x, y, tau),
        "uniform": af.uniform_loss(x, 2.0, queue=queue),
    }


TEMPERATURE_LOSSES = {
    "contrastive": lambda x, y, s: af.contrastive_loss(x, y, s),
    "contrastive_queue": lambda x, y, s: af.contrastive_loss(x, y, s, queue=_queue(x)),
    "moco": lambda x, y, s: af.contrastive_loss(x, y, s, queue=_queue(x), symmetric=False),
    "hard_contrastive": lambda x, y, s: af.hard_contrastive_loss(x, y, s, 0.4),
    "hard_contrastive_queue": lambda x, y, s: af.hard_contrastive_loss(x, y, s, 0.4, queue=_queue(x)),
    "asymptotic": lambda x, y, s: af.asymptotic_contrastive_loss(x, y, s),
    "asymptotic_queue": lambda x, y, s: af.asymptotic_contrastive_loss(x, y, s, queue=_queue(x)),
    "nt_xent": lambda x, y, s: nt_xent_loss(x, y, s),
    "uniform": lambda x, y, s: af.uniform_loss(x, 4 * s),
    "uniform_queue": lambda x, y, s: af.uniform_loss(x, 4 * s, queue=_queue(x), intra_batch=False),
    "uniform_two_view": lambda x, y, s: af.UniformLoss(t=4 * s)(x, y),
}


def _queue(x):
    return sphere(6, x.shape[1], seed=7, dtype=x.dtype)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradcheck_float64(name):
    assert torch.autograd.gradcheck(LOSSES[name], _gradcheck_inputs(), eps=1e-6, atol=1e-6)


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


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_duplicate_rows_do_not_produce_nan(name):
    row = F.normalize(torch.randn(1, 4, dtype=torch.float64), dim=1)
    x = row.repeat(6, 1).requires_grad_()
    y = x.detach().clone().requires_grad_()  # positive pairs identical too: alpha < 2 at distance 0
    loss = LOSSES[name](x, y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(v.grad).all() for v in (x, y) if v.grad is not None)


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


def test_modules_equal_functions():
    x, y = positive_pairs(20, 6)
    assert af.AlignLoss(alpha=1)(x, y) == af.align_loss(x, y, 1)
    assert af.UniformLoss(t=3)(x) == af.uniform_loss(x, 3)
    assert af.UniformLoss(t=3)(x, y) == (af.uniform_loss(x, 3) + af.uniform_loss(y, 3)) / 2
    assert af.ContrastiveLoss(tau=0.3)(x, y) == af.contrastive_loss(x, y, 0.3)
    assert af.HardContrastiveLoss(tau=0.3, alpha=0.2)(x, y) == af.hard_contrastive_loss(x, y, 0.3, 0.2)
    assert af.SimpleLoss(lam=0.1, hard_alpha=0.5)(x, y) == af.simple_loss(x, y, 0.1, 0.5)
    assert af.AsymptoticContrastiveLoss(tau=0.3)(x, y) == af.asymptotic_contrastive_loss(x, y, 0.3)


@pytest.mark.parametrize("numerics", ["unshifted", "shifted", "recompute"])
def test_tiles_that_do_not_divide_n_give_the_same_losses_and_gradients(numerics, monkeypatch):
    x, y = positive_pairs(23, 5, seed=4)
    queue = sphere(13, 5, seed=5)
    x.requires_grad_()
    y.requires_grad_()
    tau = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)

    def run():
        values = _losses_with_queue(x, y, tau, queue)
        grads = {name: torch.autograd.grad(v, (x, y, tau), allow_unused=True) for name, v in values.items()}
        return values, grads

    whole_values, whole_grads = run()
    monkeypatch.setattr(tiles, "BLOCK_ELEMENTS", 12)  # tiles of 3 × 4, 3 × 5 ... against 23 rows
    monkeypatch.setattr(tiles, "BLOCK_COLUMNS", 4)
    # The hard-negative blocks follow the same tiling policy: one full row (of 23 or more) per block here.
    if numerics == "shifted":
        monkeypatch.setattr(tiles, "UNSHIFTED_LIMIT", {})
    if numerics == "recompute":
        monkeypatch.setattr(tiles, "SAVED_ELEMENTS", 0)
    tiled_values, tiled_grads = run()
    for name in whole_values:
        torch.testing.assert_close(tiled_values[name], whole_values[name], rtol=1e-12, atol=1e-12, msg=name)
        for got, want in zip(tiled_grads[name], whole_grads[name]):
            if want is None:
                assert got is None
            else:
                torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("name", sorted(TEMPERATURE_LOSSES))
def test_gradcheck_in_x_y_and_temperature(name):
    x, y = positive_pairs(6, 4, seed=3)
    inputs = leaves(x, y, 0.4)
    assert torch.autograd.gradcheck(TEMPERATURE_LOSSES[name], inputs, eps=1e-6, atol=1e-6)


def test_clip_style_logit_scale_trains_through_module():
    logit_scale = torch.nn.Parameter(torch.tensor(2.659, dtype=torch.float64))  # log(1 / 0.07)
    x, y = positive_pairs(16, 8, seed=1)
    tau = 1 / logit_scale.clamp(max=4.6052).exp()  # CLIP's clamp: logit scale at most 100
    value = af.contrastive_loss(x, y, tau)
    value.backward()
    assert value.item() == pytest.approx(af.contrastive_loss(x, y, math.exp(-2.659)).item(), rel=1e-12)
    assert logit_scale.grad is not None and torch.isfinite(logit_scale.grad)
    module = af.ContrastiveLoss(tau=torch.nn.Parameter(torch.tensor(0.1)))
    assert [name for name, _ in module.named_parameters()] == ["tau"]
    assert "tau=0.1" in repr(module)


def test_temperature_tensor_must_be_one_positive_number():
    x, y = positive_pairs(4, 3)
    with pytest.raises(ValueError, match="one-element"):
        af.contrastive_loss(x, y, torch.ones(2))
    with pytest.raises(ValueError, match="`tau` must be a positive"):
        af.contrastive_loss(x, y, torch.tensor(-0.1))


def test_small_temperature_in_float32_takes_the_shifted_path_and_stays_exact():
    # tau = 0.01: logits up to 100 would overflow an unshifted float32 exp.
    x, y = positive_pairs(64, 8, noise=0.5, seed=3)
    queue = sphere(32, 8, seed=4)
    doubles = _losses_with_queue(x, y, 0.01, queue)
    for name, value in _losses_with_queue(x.float(), y.float(), 0.01, queue.float()).items():
        double = doubles[name]
        assert torch.isfinite(value), name
        assert value.item() == pytest.approx(double.item(), rel=1e-4, abs=1e-4), name


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("loss", ["nt_xent", "moco", "hard"])
def test_new_forms_under_autocast(dtype, loss):
    torch.manual_seed(0)
    encoder = torch.nn.Linear(32, 16)
    inputs = torch.randn(64, 32)
    views = inputs + 0.1 * torch.randn(64, 32)
    queue = F.normalize(torch.randn(50, 16), dim=1)
    functions = {
        "nt_xent": lambda a, b: nt_xent_loss(a, b, 0.2),
        "moco": lambda a, b: af.contrastive_loss(a, b, 0.2, queue, symmetric=False),
        "hard": lambda a, b: af.hard_contrastive_loss(a, b, 0.2, 0.1, queue),
    }
    full = functions[loss](F.normalize(encoder(inputs), dim=1), F.normalize(encoder(views), dim=1))
    with torch.autocast("cpu", dtype=dtype):
        low = functions[loss](F.normalize(encoder(inputs), dim=1), F.normalize(encoder(views), dim=1))
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(full.item(), rel=2e-2)
