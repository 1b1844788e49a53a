"""Objective.parse: the papers' notation, values, round-trips and errors."""

import pytest
import torch

import aligniform as af
from tests.support import reference as ref
from tests.support.sphere import positive_pairs

PAPER_SPECS = [
    "0.98*align(alpha=2) + 0.96*uniform(t=2)",
    "contrastive(tau=0.5) + uniform(t=2)",
    "3*align(alpha=2) + uniform(t=3)",
    "hard_contrastive(tau=0.5, alpha=0.08)",
    "simple(lam=0.01, hard_alpha=0.1)",
    "asymptotic_contrastive(tau=0.2)",
]


@pytest.mark.parametrize("spec", PAPER_SPECS)
def test_str_round_trips(spec):
    objective = af.Objective.parse(spec)
    again = af.Objective.parse(str(objective))
    assert str(again) == str(objective)
    x, y = positive_pairs(16, 8)
    assert again(x, y).item() == pytest.approx(objective(x, y).item(), rel=1e-12)


def test_paper_spec_prints_as_written():
    assert (
        str(af.Objective.parse("0.98*align(alpha=2) + 0.96*uniform(t=2)")) == "0.98*align(alpha=2) + 0.96*uniform(t=2)"
    )
    assert str(af.Objective.parse(" contrastive( tau = 0.5 )+uniform")) == "contrastive(tau=0.5) + uniform(t=2)"


def test_weighted_sum_and_last_terms():
    x, y = positive_pairs(20, 6)
    objective = af.Objective.parse("0.98*align(alpha=2) + 0.96*uniform(t=2)")
    loss = objective(x, y)
    align = af.align_loss(x, y, 2)
    uniform = (af.uniform_loss(x, 2) + af.uniform_loss(y, 2)) / 2  # the paper's two-view mean
    assert loss.item() == pytest.approx(0.98 * align.item() + 0.96 * uniform.item(), rel=1e-12)
    assert objective.last_terms == pytest.approx({"align": align.item(), "uniform": uniform.item()})


def test_repeated_terms_get_distinct_keys():
    x, y = positive_pairs(10, 4)
    objective = af.Objective.parse("uniform(t=1) + uniform(t=4)")
    objective(x, y)
    assert set(objective.last_terms) == {"uniform", "uniform_2"}


def test_queue_reaches_queue_terms_only():
    x, y = positive_pairs(10, 4)
    queue = positive_pairs(7, 4, seed=5)[0]
    objective = af.Objective.parse("align(alpha=2) + uniform(t=2, intra_batch=false) + contrastive(tau=0.2)")
    value = objective(x, y, queue=queue)
    expected = (
        af.align_loss(x, y)
        + (af.uniform_loss(x, 2, queue, False) + af.uniform_loss(y, 2, queue, False)) / 2
        + af.contrastive_loss(x, y, 0.2, queue)
    )
    assert value.item() == pytest.approx(expected.item(), rel=1e-12)
    assert "intra_batch=false" in str(objective)


def test_gradient_flows():
    x, y = positive_pairs(10, 4)
    x.requires_grad_()
    af.Objective.parse("contrastive(tau=0.5) + uniform(t=2)")(x, y).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    "spec,message",
    [
        ("foo(t=2)", r"unknown objective term 'foo'; valid terms: align\(alpha=2\), uniform\(t=2"),
        ("align(beta=2)", r"unknown argument\(s\) beta for align; valid: align\(alpha=2\)"),
        ("hard_contrastive(tau=0.5)", r"hard_contrastive needs argument\(s\) alpha"),
        ("uniform(t=-1)", r"in objective term uniform: `t` must be a positive"),
        ("hard_contrastive(tau=0.5, alpha=2)", r"`alpha` must lie in \(0, 1\]"),
        ("align(alpha=two)", r"expected a number"),
        ("align(2)", r"arguments are written name=value"),
        ("align(alpha=2) +", r"empty term"),
        ("align(alpha=2", r"unbalanced"),
        ("", r"non-empty string"),
        ("0*align", r"weight of align must be a positive"),
        ("2 align", r"cannot parse objective term"),
    ],
)
def test_bad_specs_raise_clear_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        af.Objective.parse(spec)


def test_scientific_notation_weights():
    objective = af.Objective.parse("1e-1*align + 2.5E+0*uniform(t=2)")
    assert [term.weight for term in objective.terms] == [0.1, 2.5]


def test_moco_mode_is_query_sided():
    q, k = positive_pairs(10, 4)
    queue = positive_pairs(7, 4, seed=5)[0]
    objective = af.Objective.parse("contrastive(tau=0.2) + 3*align(alpha=2) + uniform(t=3)")
    value = objective(q, k, queue=queue, moco=True)
    # MoCo: each query against [its own key, queue], not the other keys of the batch (issue 11).
    own_key_terms = [
        ref._infonce_terms(q.numpy()[i : i + 1], k.numpy()[i : i + 1], list(queue.numpy()), 0.2) for i in range(10)
    ]
    one_directional = sum(term for terms in own_key_terms for term in terms) / 10
    expected = one_directional + 3 * af.align_loss(q, k).item() + af.uniform_loss(q, 3, queue).item()
    assert value.item() == pytest.approx(expected, rel=1e-10)
    assert objective.last_terms["uniform"] == pytest.approx(ref.uniform(q, 3, queue=queue), rel=1e-10)


def test_one_directional_losses_match_reference():
    x, y = positive_pairs(9, 5)
    expected = sum(ref._infonce_terms(x.numpy(), y.numpy(), [], 0.3, alpha=0.5)) / 9
    assert af.hard_contrastive_loss(x, y, 0.3, 0.5, symmetric=False).item() == pytest.approx(expected, rel=1e-10)
    both = af.contrastive_loss(x, y, 0.3)
    halves = (af.contrastive_loss(x, y, 0.3, symmetric=False) + af.contrastive_loss(y, x, 0.3, symmetric=False)) / 2
    assert both.item() == pytest.approx(halves.item(), rel=1e-12)


@pytest.mark.parametrize(
    "spec,message",
    [
        ("align(alpha=2, alpha=3)", r"argument alpha of align is given twice"),
        ("align(alpha=true)", r"align\(alpha=\.\.\.\) must be a number, got true"),
        ("contrastive(tau=false)", r"contrastive\(tau=\.\.\.\) must be a number, got false"),
        ("uniform(intra_batch=2)", r"uniform\(intra_batch=\.\.\.\) must be true or false, got 2"),
        ("uniform(t=none)", r"uniform\(t=\.\.\.\) must be a number, got none"),
    ],
)
def test_repeated_and_mistyped_arguments_name_the_term_and_argument(spec, message):
    with pytest.raises(ValueError, match=message):
        af.Objective.parse(spec)


def test_optional_arguments_still_take_none_and_switches_true_or_false():
    assert str(af.Objective.parse("simple(lam=1, hard_alpha=none)")) == "simple(lam=1)"
    assert "intra_batch=false" in str(af.Objective.parse("uniform(t=2, intra_batch=false)"))
    with pytest.raises(ValueError, match="weight of align must be a positive"):
        af.objective.Term("align", True)
