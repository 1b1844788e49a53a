"""The fused one-tile forms of the losses over the 2N views are bitwise the tiled path (values and gradients)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F

from aligniform.losses import contrastive, debiased, decoupled, supcon
from aligniform.losses.engine.fused import (
    FusedDebiased,
    FusedDecoupled,
    FusedNTXent,
    FusedSupCon,
    fused_debiased,
    fused_decoupled,
    fused_nt_xent,
    fused_supcon,
)

SIZES = [2, 3, 7, 64, 256, 300, 1024]
DTYPES = [torch.float32, torch.float64]

# (name, module whose dispatch is switched off for the tiled path, the dispatch's name there, the loss)
Case = tuple[str, ModuleType, str, Callable[..., torch.Tensor]]


def _supcon(x: torch.Tensor, y: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    labels = torch.arange(x.shape[0]) % 5  # classes of several members, and (at N = 2, 3) of one
    return supcon.supervised_contrastive_loss(x, y, labels, tau)


CASES: list[Case] = [
    ("nt_xent", contrastive, "fused_nt_xent", lambda x, y, tau: contrastive.nt_xent_loss(x, y, tau)),
    ("supcon", supcon, "fused_supcon", _supcon),
    ("decoupled", decoupled, "fused_decoupled", lambda x, y, tau: decoupled.decoupled_contrastive_loss(x, y, tau)),
    ("debiased", debiased, "fused_debiased", lambda x, y, tau: debiased.debiased_contrastive_loss(x, y, tau, 0.1)),
    # A large class prior: most anchors' corrected sums are not positive, some are clipped at the floor.
    (
        "debiased_clipped",
        debiased,
        "fused_debiased",
        lambda x, y, tau: debiased.debiased_contrastive_loss(x, y, tau, 0.6),
    ),
]


def _inputs(n: int, dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed + n)
    x = F.normalize(torch.randn(n, 32, generator=generator, dtype=dtype), dim=1)
    y = F.normalize(x + 0.5 * torch.randn(n, 32, generator=generator, dtype=dtype), dim=1)
    return x, y


def _run(
    loss: Callable[..., torch.Tensor], x: torch.Tensor, y: torch.Tensor, learnable: bool
) -> tuple[torch.Tensor, ...]:
    a, b = x.clone().requires_grad_(), y.clone().requires_grad_()
    scale = torch.tensor(2.0, dtype=x.dtype, requires_grad=True)
    tau = 1 / scale.exp() if learnable else 0.2
    value = loss(a, b, tau)
    (value * 1.7).backward()  # an upstream gradient other than 1
    grads = [a.grad, b.grad] + ([scale.grad] if learnable else [])
    assert all(grad is not None for grad in grads)
    return (value.detach(), *(grad for grad in grads if grad is not None))


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("learnable", [False, True], ids=["fixed_tau", "learnable_tau"])
def test_fused_is_bitwise_the_tiled_path(
    case: Case,
    n: int,
    dtype: torch.dtype,
    learnable: bool,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    request_finalizer = request.addfinalizer
    name, module, dispatch, loss = case
    if name == "supcon":
        # The tiled SupCon's gradient is itself not reproducible with several threads at large N (autograd's
        # backward of class_sums[anchor_class] is a parallel index_put_ with accumulate); the fused form uses
        # the same operation, so the comparison runs on one thread.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        request_finalizer(lambda: torch.set_num_threads(threads))
    x, y = _inputs(n, dtype)
    calls: list[bool] = []
    original = getattr(module, dispatch)

    def counted(*args: object, **kwargs: object) -> torch.Tensor | None:
        result = original(*args, **kwargs)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(module, dispatch, counted)
    fused = _run(loss, x, y, learnable)
    assert calls == [True]  # the fused form ran
    monkeypatch.setattr(module, dispatch, lambda *args, **kwargs: None)
    tiled = _run(loss, x, y, learnable)
    for got, want in zip(fused, tiled, strict=True):
        assert got is not None and want is not None
        assert torch.equal(got, want), (got - want).abs().max()


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
@pytest.mark.parametrize("wanted", ["x", "y", "tau"])
def test_fused_with_some_inputs_fixed(case: Case, wanted: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only x, only y or only the temperature requires grad: the same gradient as the tiled path's."""
    _, module, dispatch, loss = case
    x, y = _inputs(64, torch.float64, seed=1)

    def run() -> torch.Tensor:
        a, b = x.clone().requires_grad_(wanted == "x"), y.clone().requires_grad_(wanted == "y")
        scale = torch.tensor(2.0, dtype=x.dtype, requires_grad=wanted == "tau")
        leaf = {"x": a, "y": b, "tau": scale}[wanted]
        (loss(a, b, 1 / scale.exp()) * 0.3).backward()
        assert leaf.grad is not None
        return leaf.grad

    fused = run()
    monkeypatch.setattr(module, dispatch, lambda *args, **kwargs: None)
    assert torch.equal(fused, run())


def _double(n: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x, y = _inputs(n, torch.float64, seed=3)
    scale = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    return x.requires_grad_(), y.requires_grad_(), scale


def _labels(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """SupCon's bookkeeping for labels 0, 1, 0, 1, ... (as supervised_contrastive_loss makes it)."""
    labels = torch.arange(n) % 2
    classes, index = torch.unique(labels.repeat(2), return_inverse=True)
    counts = torch.bincount(index, minlength=len(classes))
    anchor_class = torch.searchsorted(classes, labels).repeat(2)
    return index, anchor_class, (counts[anchor_class] - 1).double(), len(classes)


def test_gradcheck_nt_xent() -> None:
    x, y, scale = _double()

    def loss(a: torch.Tensor, b: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        tau = 1 / s.exp()
        with torch.no_grad():
            z = torch.cat([a, b])
            anchors = z / tau
        return FusedNTXent.apply(a, b, tau, z, anchors)

    assert torch.autograd.gradcheck(loss, (x, y, scale))


def _views_gradcheck(apply: Callable[..., torch.Tensor]) -> None:
    x, y, scale = _double()

    def loss(a: torch.Tensor, b: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        tau = 1 / s.exp()
        with torch.no_grad():
            anchors = (a / tau, b / tau)
        return apply(a, b, tau, *anchors)

    assert torch.autograd.gradcheck(loss, (x, y, scale))


def test_gradcheck_decoupled() -> None:
    _views_gradcheck(FusedDecoupled.apply)


def test_gradcheck_supcon() -> None:
    index, anchor_class, count, classes = _labels(5)
    _views_gradcheck(lambda *args: FusedSupCon.apply(*args, index, anchor_class, count, classes))


def test_gradcheck_debiased() -> None:
    # Offsets that put some anchors on each side of the clipping and of log(1 − e^δ)'s two branches.
    _views_gradcheck(lambda *args: FusedDebiased.apply(*args, 1.0, 0.5, -0.1))


def test_dispatch_declines() -> None:
    """The fused forms decline what the tiled path does otherwise: no gradient, shifted exps, several tiles."""
    x, y = _inputs(8, torch.float32)
    assert fused_nt_xent(x, y, 0.2) is None  # nothing needs a gradient
    assert fused_decoupled(x, y, 0.2) is None
    a, b = x.clone().requires_grad_(), y.clone().requires_grad_()
    assert fused_nt_xent(a, b, 0.01) is None  # |logit| up to 100 > 60: the engine shifts
    assert fused_debiased(a, b, 0.01, 0.1) is None
    index, anchor_class, count, classes = _labels(8)
    assert fused_supcon(a, b, 0.01, index, anchor_class, count.float(), classes) is None
    big = F.normalize(torch.randn(4097, 4), dim=1).requires_grad_()
    assert fused_nt_xent(big, big, 0.5) is None  # 2N columns over BLOCK_COLUMNS: more than one tile
    assert fused_decoupled(a, b, 0.2) is not None
    with torch.no_grad():
        assert fused_decoupled(a, b, 0.2) is None  # no backward can come
