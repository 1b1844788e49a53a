"""The contrastive family's candidate sets (MoCo, queue, NT-Xent), learnable temperatures and tiling."""

import math

import pytest
import torch
import torch.nn.functional as F

import aligniform as af
from aligniform.losses import NTXentLoss, nt_xent_loss
from aligniform.losses.engine import logsumexp as tiles
from tests.losses import plain
from tests.support import reference as ref
from tests.support.sphere import positive_pairs, sphere

FORMS = {  # (symmetric, batch_negatives): what the docs promise
    "symmetric": (True, None),
    "moco": (False, None),
    "moco_with_batch_keys": (False, True),
    "symmetric_queue_only": (True, False),
}


def _expected_batch_negatives(form):
    symmetric, batch_negatives = FORMS[form]
    return batch_negatives if batch_negatives is not None else symmetric


# ---------------------------------------------------------------- MoCo (issue 11)


def test_moco_example_of_the_issue_matches_moco_not_the_in_batch_variant():
    # N = 8, K = 64, tau = 0.2: queries against [own key, queue], as MoCo and moco_align_uniform do.
    q, k = positive_pairs(8, 16, seed=11)
    queue = sphere(64, 16, seed=12)
    value = af.contrastive_loss(q, k, 0.2, queue=queue, symmetric=False).item()
    assert value == pytest.approx(plain.moco(q, k, queue, 0.2), rel=1e-12)
    assert value == pytest.approx(plain.matrix_moco(q, k, queue, 0.2).item(), rel=1e-12)
    # The old behaviour stays available, by name, as a different loss.
    in_batch = af.contrastive_loss(q, k, 0.2, queue=queue, symmetric=False, batch_negatives=True).item()
    assert in_batch == pytest.approx(sum(ref._infonce_terms(q.numpy(), k.numpy(), list(queue.numpy()), 0.2)) / 8)
    assert in_batch > value  # the extra in-batch keys only add to the denominator


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("n,k", [(1, 5), (2, 3), (9, 17)])
@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_contrastive_forms_match_loop(form, n, k, tau):
    symmetric, batch_negatives = FORMS[form]
    x, y = positive_pairs(n, 6, seed=n)
    queue = sphere(k, 6, seed=k)
    value = af.contrastive_loss(x, y, tau, queue, symmetric=symmetric, batch_negatives=batch_negatives)
    expected = plain.infonce(x, y, tau, queue, symmetric, _expected_batch_negatives(form))
    assert value.item() == pytest.approx(expected, rel=1e-11)


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("alpha", [0.07, 0.25, 0.5])
def test_hard_contrastive_forms_match_loop(form, alpha):
    symmetric, batch_negatives = FORMS[form]
    x, y = positive_pairs(7, 5, seed=2)
    queue = sphere(30, 5, seed=3)
    value = af.hard_contrastive_loss(x, y, 0.3, alpha, queue, symmetric=symmetric, batch_negatives=batch_negatives)
    expected = plain.infonce(x, y, 0.3, queue, symmetric, _expected_batch_negatives(form), alpha=alpha)
    assert value.item() == pytest.approx(expected, rel=1e-11)


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("hard_alpha", [None, 0.1, 0.5])
def test_simple_forms_match_loop(form, hard_alpha):
    symmetric, batch_negatives = FORMS[form]
    x, y = positive_pairs(7, 5, seed=4)
    queue = sphere(12, 5, seed=5)
    value = af.simple_loss(x, y, 0.2, hard_alpha, queue, symmetric=symmetric, batch_negatives=batch_negatives)
    expected = plain.simple(x, y, 0.2, queue, symmetric, _expected_batch_negatives(form), hard_alpha)
    assert value.item() == pytest.approx(expected, rel=1e-11, abs=1e-12)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_asymptotic_forms_match_loop(form):
    symmetric, batch_negatives = FORMS[form]
    x, y = positive_pairs(7, 5, seed=6)
    queue = sphere(12, 5, seed=7)
    value = af.asymptotic_contrastive_loss(x, y, 0.4, queue=queue, symmetric=symmetric, batch_negatives=batch_negatives)
    expected = plain.asymptotic(x, y, 0.4, queue, symmetric, _expected_batch_negatives(form))
    assert value.item() == pytest.approx(expected, rel=1e-11)


def test_single_pair_with_queue_works_for_every_form():
    x, y = positive_pairs(1, 4, seed=8)
    queue = sphere(10, 4, seed=9)
    for symmetric in (True, False):
        assert af.contrastive_loss(x, y, 0.2, queue, symmetric=symmetric).item() == pytest.approx(
            plain.infonce(x, y, 0.2, queue, symmetric, symmetric)
        )
        assert af.hard_contrastive_loss(x, y, 0.2, 0.3, queue, symmetric=symmetric).item() == pytest.approx(
            plain.infonce(x, y, 0.2, queue, symmetric, symmetric, alpha=0.3)
        )
        assert af.simple_loss(x, y, 0.1, 0.3, queue, symmetric=symmetric).item() == pytest.approx(
            plain.simple(x, y, 0.1, queue, symmetric, symmetric, 0.3)
        )
        assert af.asymptotic_contrastive_loss(x, y, 0.2, queue=queue, symmetric=symmetric).item() == pytest.approx(
            plain.asymptotic(x, y, 0.2, queue, symmetric, symmetric)
        )


def test_no_negatives_is_an_error():
    x, y = positive_pairs(4, 3)
    with pytest.raises(ValueError, match="needs a queue"):
        af.contrastive_loss(x, y, 0.2, batch_negatives=False)


def test_objective_moco_mode_uses_moco_form():
    q, k = positive_pairs(10, 4)
    queue = sphere(7, 4, seed=5)
    objective = af.Objective.parse("contrastive(tau=0.2) + hard_contrastive(tau=0.2, alpha=0.5) + simple(lam=0.1)")
    objective(q, k, queue=queue, moco=True)
    terms = objective.last_terms
    assert terms["contrastive"] == pytest.approx(plain.moco(q, k, queue, 0.2), rel=1e-10)
    assert terms["hard_contrastive"] == pytest.approx(plain.moco(q, k, queue, 0.2, alpha=0.5), rel=1e-10)
    assert terms["simple"] == pytest.approx(plain.simple(q, k, 0.1, queue, False, False), rel=1e-10)


# ---------------------------------------------------------------- NT-Xent


@pytest.mark.parametrize("n", [2, 5, 16])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_matches_loop_and_lightly_form(n, tau):
    x, y = positive_pairs(n, 6, seed=n)
    value = nt_xent_loss(x, y, tau)
    assert value.item() == pytest.approx(plain.nt_xent(x, y, tau), rel=1e-11)
    assert value.item() == pytest.approx(plain.matrix_nt_xent(x, y, tau).item(), rel=1e-11)
    assert NTXentLoss(tau=tau)(x, y) == value


def test_nt_xent_differs_from_contrastive_by_the_same_view_negatives():
    x, y = positive_pairs(12, 5)
    assert nt_xent_loss(x, y, 0.3).item() > af.contrastive_loss(x, y, 0.3).item()


# ---------------------------------------------------------------- dense forms, tiles and paths


def test_contrastive_equals_the_plain_cross_entropy_form():
    x, y = positive_pairs(40, 8, seed=1)
    torch.testing.assert_close(af.contrastive_loss(x, y, 0.1), plain.matrix_contrastive(x, y, 0.1))


@pytest.mark.parametrize("alpha", [0.05, 0.3])
def test_hard_contrastive_equals_dense_with_queue(alpha):
    x, y = positive_pairs(20, 6, seed=2)
    queue = sphere(15, 6, seed=3)
    dense = plain.matrix_hard_contrastive(x, y, 0.2, alpha, queue)
    torch.testing.assert_close(af.hard_contrastive_loss(x, y, 0.2, alpha, queue), dense)


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


# ---------------------------------------------------------------- learnable temperature


def _queue(x):
    return sphere(6, x.shape[1], seed=7, dtype=x.dtype)


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


@pytest.mark.parametrize("name", sorted(TEMPERATURE_LOSSES))
def test_gradcheck_in_x_y_and_temperature(name):
    x, y = positive_pairs(6, 4, seed=3)
    inputs = (x.requires_grad_(), y.requires_grad_(), torch.tensor(0.4, dtype=torch.float64, requires_grad=True))
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
    with pytest.raises(ValueError, match="tau must be a positive"):
        af.contrastive_loss(x, y, torch.tensor(-0.1))


# ---------------------------------------------------------------- stability


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
