"""Decoupled contrastive loss (Yeh et al. 2022): reference, exact exclusion, DCLW, gradients, bad inputs."""

import math

import pytest
import torch

import aligniform as af
from aligniform.losses import DecoupledContrastiveLoss, decoupled_contrastive_loss, nt_xent_loss
from aligniform.losses.engine import logsumexp as tiles
from tests.support import reference as ref
from tests.support.sphere import leaves, positive_pairs, sphere


@pytest.mark.parametrize("n,d", [(2, 3), (5, 4), (17, 8), (33, 16)])
@pytest.mark.parametrize("tau", [0.05, 0.2, 1.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_reference(n, d, tau, weighted):
    x, y = positive_pairs(n, d, seed=n)
    value = decoupled_contrastive_loss(x, y, tau, weighted=weighted, sigma=0.5).item()
    assert value == pytest.approx(ref.decoupled(x, y, tau, weighted, 0.5), rel=1e-11, abs=1e-12)


@pytest.mark.parametrize("n,k", [(1, 4), (6, 1), (9, 13)])
@pytest.mark.parametrize("weighted", [False, True])
def test_queue_matches_reference(n, k, weighted):
    x, y = positive_pairs(n, 5, seed=k)
    queue = sphere(k, 5, seed=k + 1)
    value = decoupled_contrastive_loss(x, y, 0.3, weighted=weighted, sigma=0.7, queue=queue).item()
    assert value == pytest.approx(ref.decoupled(x, y, 0.3, weighted, 0.7, queue), rel=1e-11, abs=1e-12)


def test_the_positive_is_exactly_absent_even_when_it_dominates():
    # Identical views at tau = 0.01: the positive's exp is about e^100 times a negative's, so subtracting it back
    # out of a float32 sum that held it would leave nothing of the negatives (the form the masks avoid).
    x = sphere(16, 8, seed=1, dtype=torch.float32)
    value = decoupled_contrastive_loss(x, x, 0.01).item()
    assert value == pytest.approx(ref.decoupled(x.double(), x.double(), 0.01), rel=1e-5)
    logits = torch.cat([x, x]) @ torch.cat([x, x]).T / 0.01
    total = torch.exp(logits - 100).sum(1) - torch.exp(torch.zeros(32))  # drop the anchor itself ...
    subtracted = torch.log(total - torch.exp(logits.diagonal(16).repeat(2) - 100)) + 100  # ... and the positive
    assert not torch.isfinite(subtracted - 100).all()  # the cancelling form loses the negatives entirely
    assert math.isfinite(value) and value < -40


def test_relation_to_nt_xent():
    # Per anchor, NT-Xent_a = log(1 + exp(D_a)) > D_a, the decoupled term D_a = LSE_negatives - positive.
    x, y = positive_pairs(2, 4, seed=5)
    dcl = decoupled_contrastive_loss(x, y, 0.5).item()
    assert nt_xent_loss(x, y, 0.5).item() > dcl


def test_dclw_weights_average_to_one():
    # With every positive equally similar the weights are all 1: DCLW = DCL.
    x = sphere(12, 6, seed=2)
    rotation = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))[0]
    y = x @ rotation  # every x_iᵀy_i differs; use y = x for equal similarities
    assert decoupled_contrastive_loss(x, x, 0.3, weighted=True).item() == pytest.approx(
        decoupled_contrastive_loss(x, x, 0.3).item(), rel=1e-12
    )
    assert decoupled_contrastive_loss(x, y, 0.3, weighted=True).item() != pytest.approx(
        decoupled_contrastive_loss(x, y, 0.3).item(), rel=1e-6
    )


@pytest.mark.parametrize("tau", [0.01, 0.2])
@pytest.mark.parametrize("keep_tiles", [True, False])
def test_tiles_that_do_not_divide_n(tau, keep_tiles, monkeypatch):
    x, y = positive_pairs(23, 6, seed=4)
    whole = leaves(x, y)
    expected = decoupled_contrastive_loss(*whole, tau, weighted=True)
    expected.backward()
    monkeypatch.setattr(tiles, "BLOCK_COLUMNS", 5)
    monkeypatch.setattr(tiles, "BLOCK_ELEMENTS", 35)
    if not keep_tiles:
        monkeypatch.setattr(tiles, "SAVED_ELEMENTS", 0)
    tiled = leaves(x, y)
    value = decoupled_contrastive_loss(*tiled, tau, weighted=True)
    value.backward()
    assert value.item() == pytest.approx(expected.item(), rel=1e-12)
    for a, b in zip(tiled, whole):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_gradcheck_in_features_and_temperature(weighted):
    x, y = positive_pairs(6, 4, seed=3)
    queue = sphere(3, 4, seed=5)
    inputs = leaves(x, y, 0.3)
    assert torch.autograd.gradcheck(lambda a, b, t: decoupled_contrastive_loss(a, b, t, weighted), inputs)
    assert torch.autograd.gradcheck(lambda a, b, t: decoupled_contrastive_loss(a, b, t, weighted, queue=queue), inputs)


def test_module_and_objective_term():
    tau = torch.nn.Parameter(torch.tensor(0.2))
    module = DecoupledContrastiveLoss(tau=tau, weighted=True, sigma=0.4)
    assert [name for name, _ in module.named_parameters()] == ["tau"]
    x, y = positive_pairs(8, 4, dtype=torch.float32)
    module(x, y).backward()
    assert tau.grad is not None
    assert repr(module) == "DecoupledContrastiveLoss(tau=0.2, weighted=True, sigma=0.4)"
    objective = af.Objective.parse("decoupled_contrastive(tau=0.2, weighted=true, sigma=0.4)")
    expected = decoupled_contrastive_loss(x, y, 0.2, True, 0.4)
    assert objective(x, y).item() == pytest.approx(expected.item(), rel=1e-6)
    assert str(objective) == "decoupled_contrastive(tau=0.2, weighted=true, sigma=0.4)"


def test_bad_inputs():
    x, y = positive_pairs(6, 4)
    with pytest.raises(ValueError, match="tau"):
        decoupled_contrastive_loss(x, y, -0.1)
    with pytest.raises(ValueError, match="sigma"):
        decoupled_contrastive_loss(x, y, 0.1, weighted=True, sigma=0)
    with pytest.raises(ValueError, match="`weighted` must be true or false"):
        decoupled_contrastive_loss(x, y, 0.1, weighted=1)
    with pytest.raises(ValueError, match="at least 2"):
        decoupled_contrastive_loss(x[:1], y[:1], 0.1)
    with pytest.raises(ValueError, match="same shape"):
        decoupled_contrastive_loss(x, y[:5], 0.1)
    with pytest.raises(ValueError, match="`queue` must have the same feature width"):
        decoupled_contrastive_loss(x, y, 0.1, queue=sphere(3, 5))
    with pytest.raises(ValueError, match="weighted"):
        af.Objective.parse("decoupled_contrastive(weighted=2)")
