"""Debiased contrastive loss (Chuang et al. 2020) and its hard variant (Robinson et al. 2021)."""

import math

import pytest
import torch

import aligniform as af
from aligniform.losses import DebiasedContrastiveLoss, debiased_contrastive_loss, nt_xent_loss
from aligniform.losses.engine import logsumexp as tiles
from tests.support import reference as ref
from tests.support.sphere import leaves, positive_pairs, sphere


@pytest.mark.parametrize("n,d", [(2, 3), (5, 4), (17, 8), (33, 16)])
@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("tau_plus", [0.01, 0.1, 0.5, 0.9])
@pytest.mark.parametrize("beta", [0.0, 0.5, 2.0])
def test_matches_reference(n, d, tau, tau_plus, beta):
    x, y = positive_pairs(n, d, seed=n)
    value = debiased_contrastive_loss(x, y, tau, tau_plus, beta).item()
    assert value == pytest.approx(ref.debiased(x, y, tau, tau_plus, beta), rel=1e-10, abs=1e-13)


@pytest.mark.parametrize("n,k", [(1, 4), (6, 1), (9, 13)])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_queue_matches_reference(n, k, beta):
    x, y = positive_pairs(n, 5, seed=k)
    queue = sphere(k, 5, seed=k + 1)
    value = debiased_contrastive_loss(x, y, 0.4, 0.1, beta, queue=queue).item()
    assert value == pytest.approx(ref.debiased(x, y, 0.4, 0.1, beta, queue), rel=1e-10, abs=1e-13)


def test_small_prior_approaches_nt_xent():
    # tau_plus -> 0 (and beta = 0): no correction; the clipping never binds since every s >= -1. That is NT-Xent.
    x, y = positive_pairs(20, 8, seed=1)
    value = debiased_contrastive_loss(x, y, 0.5, 1e-12).item()
    assert value == pytest.approx(nt_xent_loss(x, y, 0.5).item(), rel=1e-9)


def test_clipping_binds_and_is_the_floor():
    # Identical views and a large prior: the corrected sum goes negative for every anchor, g = M e^{-1/tau}.
    x = sphere(10, 6, seed=3)
    tau, m = 0.5, 18
    expected = math.log1p(m * math.exp(-1 / tau) / math.exp(1 / tau))  # -log(e^{1/tau} / (e^{1/tau} + g))
    assert debiased_contrastive_loss(x, x, tau, 0.9).item() == pytest.approx(expected, rel=1e-12)
    assert ref.debiased(x, x, tau, 0.9) == pytest.approx(expected, rel=1e-12)


def test_the_correction_lowers_the_loss():
    x, y = positive_pairs(16, 8, seed=2)
    values = [debiased_contrastive_loss(x, y, 0.5, p).item() for p in (0.01, 0.05, 0.1, 0.2)]
    assert values == sorted(values, reverse=True)


@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("keep_tiles", [True, False])
def test_tiles_that_do_not_divide_n(beta, keep_tiles, monkeypatch):
    x, y = positive_pairs(23, 6, seed=4)
    whole = leaves(x, y)
    expected = debiased_contrastive_loss(*whole, 0.2, 0.1, beta)
    expected.backward()
    monkeypatch.setattr(tiles, "BLOCK_COLUMNS", 5)
    monkeypatch.setattr(tiles, "BLOCK_ELEMENTS", 35)
    if not keep_tiles:
        monkeypatch.setattr(tiles, "SAVED_ELEMENTS", 0)
    tiled = leaves(x, y)
    value = debiased_contrastive_loss(*tiled, 0.2, 0.1, beta)
    value.backward()
    assert value.item() == pytest.approx(expected.item(), rel=1e-12)
    for a, b in zip(tiled, whole):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("tau_plus", [0.05, 0.3])
def test_gradcheck_in_features_and_temperature(beta, tau_plus):
    x, y = positive_pairs(6, 4, seed=3)
    queue = sphere(3, 4, seed=5)
    inputs = leaves(x, y, 0.4)
    assert torch.autograd.gradcheck(lambda a, b, t: debiased_contrastive_loss(a, b, t, tau_plus, beta), inputs)
    assert torch.autograd.gradcheck(
        lambda a, b, t: debiased_contrastive_loss(a, b, t, tau_plus, beta, queue=queue), inputs
    )


def test_float32_matches_float64():
    x, y = positive_pairs(64, 16, seed=2)
    for beta in (0.0, 1.0):
        value = debiased_contrastive_loss(x.float(), y.float(), 0.1, 0.1, beta).item()
        assert value == pytest.approx(debiased_contrastive_loss(x, y, 0.1, 0.1, beta).item(), rel=1e-4)


def test_module_and_objective_term():
    tau = torch.nn.Parameter(torch.tensor(0.5))
    module = DebiasedContrastiveLoss(tau=tau, tau_plus=0.1, beta=1.0)
    assert [name for name, _ in module.named_parameters()] == ["tau"]
    x, y = positive_pairs(8, 4, dtype=torch.float32)
    module(x, y).backward()
    assert tau.grad is not None
    assert repr(module) == "DebiasedContrastiveLoss(tau=0.5, tau_plus=0.1, beta=1)"
    objective = af.Objective.parse("debiased_contrastive(tau=0.5, tau_plus=0.2, beta=1)")
    expected = debiased_contrastive_loss(x, y, 0.5, 0.2, 1.0)
    assert objective(x, y).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("tau_plus", [0, 1, -0.1, 1.5, float("nan"), True, "0.1", None])
def test_bad_class_prior(tau_plus):
    x, y = positive_pairs(6, 4)
    with pytest.raises(ValueError, match=r"`tau_plus` must be a number in \(0, 1\)"):
        debiased_contrastive_loss(x, y, 0.5, tau_plus)
    with pytest.raises(ValueError, match="tau_plus"):
        DebiasedContrastiveLoss(tau_plus=tau_plus)


def test_other_bad_inputs():
    x, y = positive_pairs(6, 4)
    with pytest.raises(ValueError, match="`beta` must be a finite number >= 0"):
        debiased_contrastive_loss(x, y, 0.5, 0.1, -1.0)
    with pytest.raises(ValueError, match="beta"):
        debiased_contrastive_loss(x, y, 0.5, 0.1, float("inf"))
    with pytest.raises(ValueError, match="tau"):
        debiased_contrastive_loss(x, y, 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        debiased_contrastive_loss(x[:1], y[:1])
    with pytest.raises(ValueError, match="tau_plus"):
        af.Objective.parse("debiased_contrastive(tau_plus=1)")
