"""Learnable arguments of an objective: ``contrastive(tau=learn(0.07))`` and its kin."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from aligniform import ContrastiveLoss, Objective, contrastive_loss, uniform_loss
from aligniform.losses import learn
from aligniform.objective import Learn
from tests.support.sphere import leaves, noisy_pairs, unit_rows


def _pairs(n=6, d=4, seed=0):
    return noisy_pairs(n, d, 0.5, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "spec",
    [
        "contrastive(tau=learn(0.07))",
        "contrastive(tau=learn(0.07, min=0.01)) + uniform(t=learn(2, max=4))",
        "0.5*hard_contrastive(tau=learn(0.2, min=0.05, max=1), alpha=0.3) + uniform(t=2)",
        "asymptotic_contrastive(tau=learn(0.5))",
    ],
)
def test_learn_round_trips_and_starts_at_its_value(spec):
    objective = Objective.parse(spec)
    assert str(objective) == spec
    assert str(Objective.parse(str(objective))) == spec
    for key, value in objective.learned_values().items():
        argument = key.rsplit("_", 1)[1]
        assert value == pytest.approx(float(spec.split(f"{argument}=learn(")[1].split(",")[0].split(")")[0]))


def test_temperature_is_stored_as_clip_logit_scale():
    objective = Objective.parse("contrastive(tau=learn(0.07)) + uniform(t=learn(2))")
    stored = dict(objective.named_parameters())
    # The loss module holds its learnt arguments (the same as ContrastiveLoss(tau=learn(0.07)) in Python).
    assert set(stored) == {"terms.0.loss.learned.tau.parameter", "terms.1.loss.learned.t.parameter"}
    assert stored["terms.0.loss.learned.tau.parameter"].item() == pytest.approx(math.log(1 / 0.07))
    assert stored["terms.1.loss.learned.t.parameter"].item() == pytest.approx(math.log(2))


def test_checkpoints_with_the_old_parameter_names_still_load():
    objective = Objective.parse("contrastive(tau=learn(0.07)) + uniform(t=learn(2))")
    old = {
        "terms.0.learned.tau.parameter": torch.tensor(math.log(1 / 0.2)),
        "terms.1.learned.t.parameter": torch.tensor(0.0),
    }
    objective.load_state_dict(old)
    assert objective.learned_values() == {"contrastive_tau": 0.2, "uniform_t": 1.0}


def test_the_module_learns_the_same_way_as_the_spec():
    x, y = _pairs()
    module = ContrastiveLoss(tau=learn(0.3, min=0.01)).double()
    objective = Objective.parse("contrastive(tau=learn(0.3, min=0.01))").double()
    torch.testing.assert_close(module(x, y), objective(x, y), rtol=0, atol=0)
    assert [name for name, _ in module.named_parameters()] == ["learned.tau.parameter"]


def test_learnt_value_equals_the_fixed_loss_and_gets_the_gradient():
    x, y = _pairs()
    objective = Objective.parse("contrastive(tau=learn(0.3)) + uniform(t=learn(2))").double()
    tau, t = (value() for value in (objective.terms[0].learned["tau"], objective.terms[1].learned["t"]))
    loss = objective(x, y)
    expected = contrastive_loss(x, y, tau=tau) + (uniform_loss(x, t=t) + uniform_loss(y, t=t)) / 2
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=0)
    assert tau.item() == pytest.approx(0.3) and t.item() == pytest.approx(2)
    loss.backward()
    assert all(p.grad is not None and p.grad != 0 for p in objective.parameters())
    # The loss module keeps a plain number between calls: the objective stays copyable.
    copy.deepcopy(objective)
    assert objective.terms[0].loss.tau == 0.3


def test_gradcheck_in_x_y_and_the_learnt_parameters():
    x, y = _pairs(n=5, d=3)
    objective = Objective.parse(
        "contrastive(tau=learn(0.4)) + 0.5*uniform(t=learn(2)) + hard_contrastive(tau=learn(0.5), alpha=0.5)"
        " + asymptotic_contrastive(tau=learn(0.6))"
    ).double()
    names = [name for name, _ in objective.named_parameters()]

    def loss(x, y, *values):
        return functional_call(objective, dict(zip(names, values)), (F.normalize(x, dim=1), F.normalize(y, dim=1)))

    inputs = leaves(x, y, *objective.parameters())
    assert torch.autograd.gradcheck(loss, inputs)


def test_clamp_bounds_the_value_and_keeps_the_gradient():
    objective = Objective.parse("contrastive(tau=learn(0.07, min=0.01))").double()
    (parameter,) = objective.parameters()
    with torch.no_grad():
        parameter.fill_(math.log(1 / 0.001))  # tau = 0.001, below the bound
    assert objective.learned_values() == {"contrastive_tau": 0.01}
    assert parameter.item() == pytest.approx(math.log(1 / 0.01))  # clamped as CLIP clamps its logit scale
    x, y = _pairs()
    objective(x, y).backward()
    assert parameter.grad != 0  # at the bound the temperature still learns (issue 19)


def test_a_temperature_driven_to_its_bound_recovers():
    """Adam, 200 steps on identical pairs (tau runs to its bound), then 300 on unrelated pairs: tau must rise."""
    objective = Objective.parse("contrastive(tau=learn(0.1, min=0.05))").double()
    optimiser = torch.optim.Adam(objective.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(0)
    x, y = unit_rows(32, 8, generator), unit_rows(32, 8, generator)
    for step in range(500):
        optimiser.zero_grad()
        objective(x, x if step < 200 else y).backward()
        optimiser.step()
        if step == 199:
            assert objective.learned_values()["contrastive_tau"] == pytest.approx(0.05)
    assert objective.learned_values()["contrastive_tau"] > 0.2


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("align(alpha=learn(2))", "only tau, t"),
        ("contrastive(tau=learn())", "initial value"),
        ("contrastive(tau=learn(0))", "positive"),
        ("contrastive(tau=learn(-1))", "positive"),
        ("contrastive(tau=learn(0.1, min=0.2))", "within min and max"),
        ("contrastive(tau=learn(0.1, min=0.2, max=0.1))", "min must be below max"),
        ("contrastive(tau=learn(0.1, lo=0.2))", "min and max"),
        ("contrastive(tau=learn(0.1, min=0.01, min=0.02))", "min and max"),
        ("contrastive(tau=learn(abc))", "expected a number"),
        ("contrastive(tau=learn(inf))", "finite"),
    ],
)
def test_bad_learn_specs_raise_clear_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        Objective.parse(spec)


def test_learn_spec_object():
    assert str(Learn(2.0)) == "learn(2)"
    assert str(Learn(0.07, min=0.01, max=1.0)) == "learn(0.07, min=0.01, max=1)"
