"""The fused one-tile InfoNCE: bitwise the tiled path's values and gradients, through the public losses."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import aligniform as af
from aligniform.losses import candidates
from aligniform.losses.engine.fused import FusedInfoNCE, fused_infonce, one_tile

SIZES = [2, 3, 7, 64, 256, 300, 1024]
DTYPES = [torch.float32, torch.float64]


def _pairs(n: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(n)
    x = F.normalize(torch.randn(n, 32, generator=generator, dtype=dtype), dim=1)
    y = F.normalize(x + 0.3 * torch.randn(n, 32, generator=generator, dtype=dtype), dim=1)
    return x, y


def _value_and_grads(loss, x0, y0, learnable: bool):
    x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
    logit_scale = torch.tensor(0.7, dtype=x0.dtype, requires_grad=True)
    tau = 1 / logit_scale.exp() if learnable else 0.2
    value = loss(x, y, tau)
    (1.7 * value).backward()
    return [value.detach(), x.grad, y.grad] + ([logit_scale.grad] if learnable else [])


def _tiled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(candidates, "fused_infonce", lambda *args, **kwargs: None)


CALLS = {
    "contrastive": lambda x, y, tau: af.contrastive_loss(x, y, tau),
    "one direction": lambda x, y, tau: af.contrastive_loss(x, y, tau, symmetric=False),
    "asymptotic": lambda x, y, tau: af.asymptotic_contrastive_loss(x, y, tau),
    "asymptotic, one direction": lambda x, y, tau: af.asymptotic_contrastive_loss(x, y, tau, symmetric=False),
}


@pytest.mark.parametrize(("n", "dtype", "learnable"), list(itertools.product(SIZES, DTYPES, [False, True])))
@pytest.mark.parametrize("form", list(CALLS))
def test_fused_equals_the_tiled_path_bitwise(monkeypatch, form, n, dtype, learnable):
    x, y = _pairs(n, dtype)
    fused = _value_and_grads(CALLS[form], x, y, learnable)
    _tiled(monkeypatch)
    tiled = _value_and_grads(CALLS[form], x, y, learnable)
    for got, want in zip(fused, tiled):
        assert torch.equal(got, want)


def test_the_public_loss_takes_the_fused_path(monkeypatch):
    calls = []
    monkeypatch.setattr(FusedInfoNCE, "apply", lambda *args: calls.append(args) or torch.zeros(()))
    x, y = _pairs(8, torch.float32)
    af.contrastive_loss(x.requires_grad_(), y, 0.2)
    assert len(calls) == 1


@pytest.mark.parametrize("checks", [True, False])
def test_dispatch_rules(checks):
    x, y = _pairs(8, torch.float32)
    with af.input_checks(checks):
        assert fused_infonce(x, y, 0.2, True, True, unit_rows=checks) is None  # nothing needs a gradient
        x.requires_grad_()
        assert fused_infonce(x, y, 0.2, True, True, unit_rows=checks) is not None
        # A temperature whose logits could underflow an unshifted exp takes the shifted (tiled) path.
        assert fused_infonce(x, y, 0.01, True, True, unit_rows=checks) is None
    assert one_tile(2048, 2048) and not one_tile(4096, 4096)


@pytest.mark.parametrize(("symmetric", "positive_in_denominator"), list(itertools.product([True, False], repeat=2)))
def test_gradcheck_with_a_learnable_temperature(symmetric, positive_in_denominator):
    x, y = _pairs(5, torch.float64)
    x.requires_grad_(), y.requires_grad_()
    tau = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, t: FusedInfoNCE.apply(a, b, t, symmetric, positive_in_denominator), (x, y, tau)
    )


def test_equals_the_dense_formula_in_float64():
    x, y = _pairs(300, torch.float64)
    logits = x @ y.T / 0.2
    targets = torch.arange(300)
    want = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    torch.testing.assert_close(af.contrastive_loss(x.requires_grad_(), y, 0.2), want, rtol=1e-13, atol=0)
