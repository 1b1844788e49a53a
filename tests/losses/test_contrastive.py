"""InfoNCE (contrastive_loss): references, MoCo and queue forms, the dense cross-entropy form."""

import pytest
import torch

import aligniform as af
from tests.losses import plain
from tests.support import reference as ref
from tests.support.forms import FORMS, SIZES, expected_batch_negatives
from tests.support.sphere import positive_pairs, sphere


@pytest.mark.parametrize("n,d", SIZES)
@pytest.mark.parametrize("tau", [0.05, 0.2, 1.0])
def test_contrastive_matches_reference(n, d, tau):
    x, y = positive_pairs(n, d, seed=n)
    assert af.contrastive_loss(x, y, tau).item() == pytest.approx(ref.contrastive(x, y, tau), rel=1e-10)


def test_contrastive_with_queue_matches_reference():
    x, y = positive_pairs(6, 5)
    queue = sphere(10, 5, seed=9)
    expected = ref.contrastive(x, y, 0.3, queue)
    assert af.contrastive_loss(x, y, 0.3, queue=queue).item() == pytest.approx(expected, rel=1e-10)


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
    expected = plain.infonce(x, y, tau, queue, symmetric, expected_batch_negatives(form))
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


def test_contrastive_equals_the_plain_cross_entropy_form():
    x, y = positive_pairs(40, 8, seed=1)
    torch.testing.assert_close(af.contrastive_loss(x, y, 0.1), plain.matrix_contrastive(x, y, 0.1))
