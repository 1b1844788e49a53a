"""The fused one-tile sigmoid (SigLIP) loss: bitwise the tiled path's value and gradients, and when it is used."""

import math

import pytest
import torch

from aligniform.losses import SigmoidLoss, learn, sigmoid_loss
from aligniform.losses import sigmoid as sigmoid_module
from aligniform.losses.engine import logsumexp as tiles
from aligniform.losses.engine.fused import FusedSigmoid, fused_sigmoid
from tests.support.sphere import leaves, positive_pairs

SIZES = [2, 3, 7, 64, 256, 300, 1024]


def _arguments(n, dtype, learnable, seed=0):
    x, y = positive_pairs(n, 32, seed=seed, dtype=dtype)
    x.requires_grad_()
    y.requires_grad_()
    if not learnable:
        return [x, y], 10.0, -10.0
    log_scale = torch.tensor(math.log(10.0), dtype=dtype, requires_grad=True)
    bias = torch.tensor(-10.0, dtype=dtype, requires_grad=True)
    return [x, y, log_scale, bias], log_scale.exp(), bias


def _value_and_grads(n, dtype, learnable, fused, monkeypatch):
    inputs, scale, bias = _arguments(n, dtype, learnable)
    with monkeypatch.context() as patch:
        if not fused:  # the tiled path: the engine's softplus sums, as before the fused form existed
            patch.setattr(sigmoid_module, "fused_sigmoid", lambda *args: None)
        value = sigmoid_loss(inputs[0], inputs[1], scale, bias)
    assert (value.grad_fn is not None and type(value.grad_fn).__name__ == "FusedSigmoidBackward") == fused
    (0.37 * value).backward()  # an upstream gradient that is not 1
    return [value.detach(), *(t.grad for t in inputs)]


@pytest.mark.parametrize("learnable", [False, True], ids=["fixed", "learnt"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("n", SIZES)
def test_fused_is_bitwise_the_tiled_path(n, dtype, learnable, monkeypatch):
    fused = _value_and_grads(n, dtype, learnable, True, monkeypatch)
    tiled = _value_and_grads(n, dtype, learnable, False, monkeypatch)
    for a, b in zip(fused, tiled):
        assert torch.equal(a, b), (a - b).abs().max().item()


@pytest.mark.parametrize("which", ["scale", "bias", "y"])
def test_fused_when_only_one_input_needs_grad(which, monkeypatch):
    def run(fused):
        x, y = positive_pairs(40, 8, seed=5, dtype=torch.float32)
        scale, bias = torch.tensor(7.0), torch.tensor(-3.0)
        {"scale": scale, "bias": bias, "y": y}[which].requires_grad_()
        with monkeypatch.context() as patch:
            if not fused:
                patch.setattr(sigmoid_module, "fused_sigmoid", lambda *args: None)
            value = sigmoid_loss(x, y, scale, bias)
        value.backward(torch.tensor(1.5))
        return value.detach(), {"scale": scale, "bias": bias, "y": y}[which].grad

    for a, b in zip(run(True), run(False)):
        assert torch.equal(a, b)


def test_float32_features_with_float64_scale_and_bias(monkeypatch):
    def run(fused):
        x, y = positive_pairs(50, 8, seed=6, dtype=torch.float32)
        x.requires_grad_()
        log_scale, bias = leaves(math.log(10.0), -10.0)  # float64 leaves
        with monkeypatch.context() as patch:
            if not fused:
                patch.setattr(sigmoid_module, "fused_sigmoid", lambda *args: None)
            value = sigmoid_loss(x, y, log_scale.exp(), bias)
        value.backward(torch.tensor(2.5))
        return value.detach(), x.grad, log_scale.grad, bias.grad

    for a, b in zip(run(True), run(False)):
        assert a.dtype == b.dtype and torch.equal(a, b)


def test_a_second_backward_recomputes_the_tile(monkeypatch):
    x, y = leaves(*positive_pairs(33, 8, seed=2))
    value = sigmoid_loss(x, y, 10.0, -10.0)
    assert type(value.grad_fn).__name__ == "FusedSigmoidBackward"
    first = torch.autograd.grad(value, (x, y), retain_graph=True)
    second = torch.autograd.grad(value, (x, y))
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_module_with_learnt_arguments_is_fused_and_equal(monkeypatch):
    x, y = positive_pairs(64, 16, seed=3, dtype=torch.float32)
    grads = []
    for fused in (True, False):
        torch.manual_seed(0)
        loss_fn = SigmoidLoss(scale=learn(10.0), bias=learn(-10.0))
        with monkeypatch.context() as patch:
            if not fused:
                patch.setattr(sigmoid_module, "fused_sigmoid", lambda *args: None)
            value = loss_fn(x, y)
        value.backward()
        grads.append([value.detach(), *(p.grad for p in loss_fn.parameters())])
    for a, b in zip(*grads):
        assert torch.equal(a, b)


def test_gradcheck_of_the_fused_function():
    x, y = positive_pairs(6, 4, seed=1)
    inputs = leaves(x, y, math.log(4.0), -2.0)
    assert torch.autograd.gradcheck(lambda a, b, t, c: FusedSigmoid.apply(a, b, t.exp(), c), inputs)


def test_not_used_without_grad_or_beyond_one_tile(monkeypatch):
    x, y = positive_pairs(9, 4, seed=1)
    assert fused_sigmoid(x, y, 10.0, -10.0) is None  # nothing needs grad: the engine's path
    assert sigmoid_loss(x, y).grad_fn is None
    a, b = leaves(x, y)
    assert fused_sigmoid(a, b, 10.0, -10.0) is not None
    monkeypatch.setattr(tiles, "BLOCK_COLUMNS", 4)  # several tiles: the engine's path
    assert fused_sigmoid(a, b, 10.0, -10.0) is None
    assert type(sigmoid_loss(a, b).grad_fn).__name__ != "FusedSigmoidBackward"
