"""The fused uniformity and Simple losses: bitwise the tiled path's values and gradients; where they apply."""

import math

import pytest
import torch

import aligniform as af
import aligniform.losses.simple as simple_module
import aligniform.losses.uniform as uniform_module
from aligniform.losses.engine import pair_count, pairwise_logsumexp
from aligniform.losses.engine.fused import FusedUniformity, fused_uniformity
from aligniform.losses.engine.fused.pairs import FusedSimple, fused_simple
from aligniform.losses.engine.fused.uniformity import augmented, safe_from_squared_norms
from aligniform.losses.engine.logsumexp import _unshifted_is_safe
from tests.support.sphere import positive_pairs, sphere

SIZES = [2, 3, 7, 64, 256, 300, 1024]


def tiled(monkeypatch):
    """Force the tiled path: the dispatch declines."""
    monkeypatch.setattr(uniform_module, "fused_uniformity", lambda *args, **kwargs: None)


def scale(value, learnable, dtype):
    return torch.tensor(value, dtype=dtype, requires_grad=True) if learnable else value


def loss_and_grads(x0, t_value, learnable, upstream, **kwargs):
    x = x0.clone().requires_grad_()
    t = scale(t_value, learnable, x0.dtype)
    loss = af.uniform_loss(x, t, **kwargs)
    inputs = [x, t] if learnable else [x]
    return [loss.detach(), *torch.autograd.grad(loss, inputs, upstream)]


def assert_bitwise(fused, reference):
    assert len(fused) == len(reference)
    for a, b in zip(fused, reference):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b), float((a - b).abs().max())


def used_fused(monkeypatch):
    calls = []

    def spy(*args, **kwargs):
        result = fused_uniformity(*args, **kwargs)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(uniform_module, "fused_uniformity", spy)
    return calls


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("learnable", [False, True])
@pytest.mark.parametrize("t", [2.0, 0.37])
def test_fused_uniform_is_bitwise_the_tiled_path(n, dtype, learnable, t, monkeypatch):
    x = sphere(n, 33 if n > 300 else 128, seed=n, dtype=dtype)
    upstream = torch.tensor(0.73, dtype=dtype)
    calls = used_fused(monkeypatch)
    fused = loss_and_grads(x, t, learnable, upstream)
    assert calls == [True]
    tiled(monkeypatch)
    assert_bitwise(fused, loss_and_grads(x, t, learnable, upstream))


@pytest.mark.parametrize("n", [2, 64, 257])
def test_fused_uniform_t_only_and_one_element_t(n, monkeypatch):
    # Gradient for t alone (x fixed), t given as a shape-(1,) tensor.
    x = sphere(n, 16, seed=3, dtype=torch.float32)

    def run():
        t = torch.tensor([1.5], requires_grad=True)
        loss = af.uniform_loss(x, t)
        return [loss.detach(), *torch.autograd.grad(loss, [t], torch.tensor(-2.5))]

    calls = used_fused(monkeypatch)
    fused = run()
    assert calls == [True]
    tiled(monkeypatch)
    assert_bitwise(fused, run())


def test_fused_uniform_two_threads(monkeypatch):
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = sphere(256, 128, seed=5, dtype=torch.float32)
        upstream = torch.tensor(1.3)
        fused = loss_and_grads(x, 2.0, True, upstream)
        tiled(monkeypatch)
        assert_bitwise(fused, loss_and_grads(x, 2.0, True, upstream))
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("learnable", [False, True])
def test_demo_objective_gradients_unchanged(learnable, monkeypatch):
    # The demo's loss: align + the two views' uniformity, on features that share an upstream node. x and y each
    # receive gradient from align and from uniformity: the fused node's sum must fall where autograd's did.
    generator = torch.Generator().manual_seed(7)
    raw = torch.randn(2 * 256, 64, generator=generator)
    weight = torch.randn(64, 128, generator=generator)
    objective = af.Objective.parse(f"0.98*align(alpha=2) + 0.96*uniform(t={'learn(2)' if learnable else 2})")
    learned = list(objective.parameters())
    assert len(learned) == int(learnable)

    def run():
        w = weight.clone().requires_grad_()
        features = torch.nn.functional.normalize(raw @ w, dim=1)
        x, y = features[:256], features[256:]
        loss = objective(x, y)
        inputs = [w, *learned]
        return [loss.detach(), *torch.autograd.grad(loss, inputs)]

    calls = used_fused(monkeypatch)
    fused = run()
    assert calls == [True, True]
    tiled(monkeypatch)
    assert_bitwise(fused, run())


@pytest.mark.parametrize(
    "case",
    ["queue", "no_grad", "block_rows", "unsafe", "t_dtype"],
)
def test_fused_uniform_declines_where_the_engine_is_not_one_unshifted_tile(case, monkeypatch):
    x = sphere(64, 8, seed=1, dtype=torch.float32).requires_grad_()
    t: float | torch.Tensor = 2.0
    kwargs = {}
    if case == "queue":
        kwargs["queue"] = sphere(5, 8, seed=2, dtype=torch.float32)
    elif case == "no_grad":
        x = x.detach()
    elif case == "block_rows":
        kwargs["block_rows"] = 63
    elif case == "unsafe":
        t = 20.0  # |logit| bound 20 · 3√2 > 60: the engine shifts
    elif case == "t_dtype":
        t = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    calls = used_fused(monkeypatch)
    af.uniform_loss(x, t, **kwargs)
    assert calls in ([], [False])


def test_fused_uniform_block_rows_covering_the_batch_still_fuses(monkeypatch):
    x = sphere(64, 8, seed=1, dtype=torch.float32)
    calls = used_fused(monkeypatch)
    fused = loss_and_grads(x, 2.0, False, torch.tensor(0.5), block_rows=64)
    assert calls == [True]
    tiled(monkeypatch)
    assert_bitwise(fused, loss_and_grads(x, 2.0, False, torch.tensor(0.5), block_rows=64))


def test_fused_uniform_matches_pairwise_logsumexp_directly():
    x0 = sphere(40, 12, seed=9, dtype=torch.float32)
    log_count = math.log(pair_count(40, 0, True))
    x, x_ref = x0.clone().requires_grad_(), x0.clone().requires_grad_()
    fused = fused_uniformity(x, 2.0, log_count)
    assert fused is not None
    reference = pairwise_logsumexp(x_ref, 2.0) - log_count
    assert torch.equal(fused, reference)
    fused.backward()
    reference.backward()
    assert torch.equal(x.grad, x_ref.grad)


def test_fused_uniform_gradcheck():
    x = sphere(9, 5, seed=4).requires_grad_()
    t = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    log_count = math.log(pair_count(9, 0, True))

    def function(x, t):
        with torch.no_grad():
            rows, columns, _ = augmented(x, t)
        return FusedUniformity.apply(x, t, rows, columns, log_count)

    assert torch.autograd.gradcheck(function, (x, t))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("radius", [1.0, 0.5, 1.7])
def test_safety_test_agrees_with_the_engine_near_its_limit(dtype, radius):
    # The bound from the largest squared norm decides exactly as the engine's norms do, also within rounding of
    # the limit (where it defers to the engine's test).
    x = radius * sphere(50, 7, seed=2, dtype=dtype)
    x[3] *= 1.01  # one longest row
    rows, columns, squared = augmented(x, 1.0)
    base = float(torch.linalg.vector_norm(rows, dim=1).amax() * torch.linalg.vector_norm(columns, dim=1).amax())
    limit = 60.0 if dtype == torch.float32 else 600.0
    critical = limit / base
    candidates = [critical * (1 + k * 1e-7) for k in range(-40, 41)] + [critical * (1 + k * 1e-3) for k in (-5, 5)]
    for t in candidates:
        rows, columns, squared = augmented(x, t)
        assert safe_from_squared_norms(rows, columns, squared, t) == _unshifted_is_safe(rows, columns), t
        t_tensor = torch.tensor(t, dtype=dtype)
        rows, columns, squared = augmented(x, t_tensor)
        assert safe_from_squared_norms(rows, columns, squared, t_tensor) == _unshifted_is_safe(rows, columns), t


# The Simple loss (Wang & Liu): the symmetric in-batch form as one fused node.


def simple_tiled(monkeypatch):
    monkeypatch.setattr(simple_module, "fused_simple", lambda *args, **kwargs: None)


def simple_spy(monkeypatch):
    calls = []

    def spy(*args, **kwargs):
        result = fused_simple(*args, **kwargs)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(simple_module, "fused_simple", spy)
    return calls


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("lam", [0.01, 0.37])
@pytest.mark.parametrize("needs", ["both", "x", "y"])
def test_fused_simple_is_bitwise_the_graph(n, dtype, lam, needs, monkeypatch):
    x0, y0 = positive_pairs(n, 64, seed=n, dtype=dtype)
    upstream = torch.tensor(-1.9, dtype=dtype)

    def run():
        x, y = x0.clone().requires_grad_(needs != "y"), y0.clone().requires_grad_(needs != "x")
        loss = af.simple_loss(x, y, lam)
        inputs = [v for v in (x, y) if v.requires_grad]
        return [loss.detach(), *torch.autograd.grad(loss, inputs, upstream)]

    calls = simple_spy(monkeypatch)
    fused = run()
    assert calls == [True]
    simple_tiled(monkeypatch)
    assert_bitwise(fused, run())


def test_fused_simple_shared_upstream(monkeypatch):
    # x and y from one encoder, with another loss on the same features: the fused node's sums fall where
    # autograd's did.
    generator = torch.Generator().manual_seed(11)
    raw = torch.randn(2 * 256, 32, generator=generator)
    weight = torch.randn(32, 128, generator=generator)

    def run():
        w = weight.clone().requires_grad_()
        features = torch.nn.functional.normalize(raw @ w, dim=1)
        x, y = features[:256], features[256:]
        loss = af.align_loss(x, y) + 0.5 * af.simple_loss(x, y, 0.05)
        return [loss.detach(), *torch.autograd.grad(loss, [w])]

    calls = simple_spy(monkeypatch)
    fused = run()
    assert calls == [True]
    simple_tiled(monkeypatch)
    assert_bitwise(fused, run())


@pytest.mark.parametrize("case", ["queue", "hard", "one_direction", "no_grad"])
def test_fused_simple_declines_off_the_symmetric_in_batch_form(case, monkeypatch):
    x, y = positive_pairs(32, 8, seed=1, dtype=torch.float32)
    x.requires_grad_(case != "no_grad")
    kwargs: dict = {}
    if case == "queue":
        kwargs["queue"] = sphere(5, 8, seed=2, dtype=torch.float32)
    elif case == "hard":
        kwargs["hard_alpha"] = 0.5
    elif case == "one_direction":
        kwargs["symmetric"] = False
    calls = simple_spy(monkeypatch)
    af.simple_loss(x, y, 0.1, **kwargs)
    assert calls in ([], [False])


def test_fused_simple_gradcheck():
    x, y = positive_pairs(6, 4, seed=3)
    assert torch.autograd.gradcheck(lambda a, b: FusedSimple.apply(a, b, 0.3), (x.requires_grad_(), y.requires_grad_()))
