"""SigLIP's sigmoid loss (Zhai et al. 2023): reference, tiling, learnable scale and bias, bad inputs."""

import math

import pytest
import torch
import torch.nn.functional as F

import aligniform as af
from aligniform.losses import SigmoidLoss, sigmoid_loss
from aligniform.losses.engine import logsumexp as tiles
from aligniform.losses.engine import tiled_softplus_sum
from tests.support import reference as ref
from tests.support.sphere import leaves, positive_pairs


def dense_sigmoid(x, y, scale, bias):
    """The paper's pseudo-code: logits, labels 2·eye − 1, −sum(log_sigmoid(labels · logits)) / n."""
    logits = scale * x @ y.T + bias
    labels = 2 * torch.eye(x.shape[0], dtype=x.dtype) - 1
    return -F.logsigmoid(labels * logits).sum() / x.shape[0]


@pytest.mark.parametrize("n,d", [(2, 3), (5, 4), (17, 8), (33, 16)])
@pytest.mark.parametrize("scale,bias", [(10.0, -10.0), (1.0, 0.0), (50.0, 3.0), (0.3, -40.0)])
def test_matches_reference(n, d, scale, bias):
    x, y = positive_pairs(n, d, seed=n)
    value = sigmoid_loss(x, y, scale, bias).item()
    assert value == pytest.approx(ref.sigmoid(x, y, scale, bias), rel=1e-12)
    assert value == pytest.approx(dense_sigmoid(x, y, scale, bias).item(), rel=1e-12)


@pytest.mark.parametrize("offset", [-3, 0, 2, 9])
def test_engine_places_the_positives_by_offset(offset):
    r, c = torch.randn(6, 3, dtype=torch.float64), torch.randn(9, 3, dtype=torch.float64)
    signs = -torch.ones(6, 9, dtype=torch.float64)
    for i in range(6):
        if 0 <= i + offset < 9:
            signs[i, i + offset] = 1
    assert tiled_softplus_sum(r, c, offset).item() == pytest.approx(F.softplus(-signs * (r @ c.T)).sum().item())


def test_tiles_that_do_not_divide_n(monkeypatch):
    x, y = positive_pairs(23, 6, seed=4)
    scale, bias = torch.tensor(5.0, dtype=torch.float64), torch.tensor(-4.0, dtype=torch.float64)
    whole = leaves(x, y, scale, bias)
    expected = sigmoid_loss(*whole)
    expected.backward()
    monkeypatch.setattr(tiles, "BLOCK_COLUMNS", 5)
    monkeypatch.setattr(tiles, "BLOCK_ELEMENTS", 35)
    tiled = leaves(x, y, scale, bias)
    value = sigmoid_loss(*tiled)
    value.backward()
    assert value.item() == pytest.approx(expected.item(), rel=1e-12)
    for a, b in zip(tiled, whole):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def test_gradcheck_in_features_scale_and_bias(monkeypatch):
    monkeypatch.setattr(tiles, "BLOCK_COLUMNS", 4)
    monkeypatch.setattr(tiles, "BLOCK_ELEMENTS", 12)
    x, y = positive_pairs(7, 4, seed=3)
    inputs = leaves(x, y, math.log(10.0), -3.0)
    assert torch.autograd.gradcheck(lambda a, b, t, c: sigmoid_loss(a, b, t.exp(), c), inputs)


def test_gradient_matches_dense_autograd():
    x, y = positive_pairs(40, 8, seed=1)
    dense_leaves = leaves(x, y, 12.0)
    tiled_leaves = leaves(*dense_leaves)
    dense_sigmoid(*dense_leaves, -8.0).backward()
    sigmoid_loss(*tiled_leaves, -8.0).backward()
    for a, b in zip(tiled_leaves, dense_leaves):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-13)


def test_extreme_logits_stay_finite_in_float32():
    x, y = positive_pairs(32, 8, seed=2, dtype=torch.float32)
    for scale, bias in ((1000.0, -1000.0), (1000.0, 500.0)):
        inputs = leaves(x, y)
        value = sigmoid_loss(*inputs, scale, bias)
        value.backward()
        assert torch.isfinite(value) and all(torch.isfinite(t.grad).all() for t in inputs)
        assert value.item() == pytest.approx(ref.sigmoid(x, y, scale, bias), rel=1e-5)


def test_module_learns_the_papers_parameters():
    module = SigmoidLoss(learnable=True)
    # learnable=True is learn() on both: the scale stored as its log (the paper's t'), the bias as itself.
    assert module.learned["scale"].parameter.item() == pytest.approx(math.log(10))
    assert module.learned["bias"].parameter.item() == -10.0
    x, y = positive_pairs(8, 4, dtype=torch.float32)
    value = module(x, y)
    assert value.item() == pytest.approx(sigmoid_loss(x, y).item(), rel=1e-6)
    value.backward()
    assert module.learned["scale"].parameter.grad is not None and module.learned["bias"].parameter.grad is not None
    assert repr(module) == "SigmoidLoss(scale=10, bias=-10)"
    fixed = SigmoidLoss(scale=torch.nn.Parameter(torch.tensor(3.0)), bias=1.0)
    assert [name for name, _ in fixed.named_parameters()] == ["scale"]


def test_objective_term():
    x, y = positive_pairs(8, 4, dtype=torch.float32)
    objective = af.Objective.parse("sigmoid(scale=5, bias=-2)")
    assert objective(x, y).item() == pytest.approx(sigmoid_loss(x, y, 5.0, -2.0).item(), rel=1e-6)
    assert str(objective) == "sigmoid(scale=5, bias=-2)"
    assert str(af.Objective.parse("sigmoid")) == "sigmoid(scale=10)"


def test_bad_inputs():
    x, y = positive_pairs(6, 4)
    with pytest.raises(ValueError, match="scale"):
        sigmoid_loss(x, y, scale=0.0)
    with pytest.raises(ValueError, match="scale"):
        sigmoid_loss(x, y, scale=torch.ones(2))
    with pytest.raises(ValueError, match="`bias` must be a finite number"):
        sigmoid_loss(x, y, bias=float("nan"))
    with pytest.raises(ValueError, match="`bias` must be a finite number"):
        sigmoid_loss(x, y, bias="1")
    with pytest.raises(ValueError, match="`bias` must be a finite number or a one-element"):
        sigmoid_loss(x, y, bias=torch.zeros(3))
    with pytest.raises(ValueError, match="`bias` must be finite"):
        sigmoid_loss(x, y, bias=torch.tensor(float("inf")))
    with pytest.raises(ValueError, match="at least 2"):
        sigmoid_loss(x[:1], y[:1])
    with pytest.raises(ValueError, match="same shape"):
        sigmoid_loss(x, y[:4])
