"""Hard-negative contrastive loss (Wang & Liu 2021): references in every candidate form."""

import pytest
import torch

import aligniform as af
from tests.losses import plain
from tests.support import reference as ref
from tests.support.forms import FORMS, SIZES, expected_batch_negatives
from tests.support.sphere import positive_pairs, sphere


@pytest.mark.parametrize("n,d", SIZES[1:])
@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_hard_contrastive_matches_reference(n, d, alpha, tau):
    x, y = positive_pairs(n, d, seed=n)
    expected = ref.hard_contrastive(x, y, tau, alpha)
    assert af.hard_contrastive_loss(x, y, tau, alpha).item() == pytest.approx(expected, rel=1e-10)


def test_hard_contrastive_with_queue_and_alpha_one_equals_contrastive():
    x, y = positive_pairs(12, 6)
    queue = sphere(9, 6, seed=5)
    expected = ref.hard_contrastive(x, y, 0.2, 0.25, queue)
    assert af.hard_contrastive_loss(x, y, 0.2, 0.25, queue=queue).item() == pytest.approx(expected, rel=1e-10)
    torch.testing.assert_close(af.hard_contrastive_loss(x, y, 0.2, 1.0), af.contrastive_loss(x, y, 0.2))


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("alpha", [0.07, 0.25, 0.5])
def test_hard_contrastive_forms_match_loop(form, alpha):
    symmetric, batch_negatives = FORMS[form]
    x, y = positive_pairs(7, 5, seed=2)
    queue = sphere(30, 5, seed=3)
    value = af.hard_contrastive_loss(x, y, 0.3, alpha, queue, symmetric=symmetric, batch_negatives=batch_negatives)
    expected = plain.infonce(x, y, 0.3, queue, symmetric, expected_batch_negatives(form), alpha=alpha)
    assert value.item() == pytest.approx(expected, rel=1e-11)


@pytest.mark.parametrize("alpha", [0.05, 0.3])
def test_hard_contrastive_equals_dense_with_queue(alpha):
    x, y = positive_pairs(20, 6, seed=2)
    queue = sphere(15, 6, seed=3)
    dense = plain.matrix_hard_contrastive(x, y, 0.2, alpha, queue)
    torch.testing.assert_close(af.hard_contrastive_loss(x, y, 0.2, alpha, queue), dense)


@pytest.mark.parametrize("alpha", [0.01, 0.08, 0.3, 0.5])
def test_hard_contrastive_wide_rows_equal_dense(alpha):
    # 300 + 400 candidates per anchor: the bucket-count selection path of the engine.
    x, y = positive_pairs(300, 6, seed=4)
    queue = sphere(400, 6, seed=5)
    dense = plain.matrix_hard_contrastive(x, y, 0.2, alpha, queue)
    torch.testing.assert_close(af.hard_contrastive_loss(x, y, 0.2, alpha, queue), dense)
    x.requires_grad_(True)
    got = torch.autograd.grad(af.hard_contrastive_loss(x, y, 0.2, alpha, queue), x)[0]
    want = torch.autograd.grad(plain.matrix_hard_contrastive(x, y, 0.2, alpha, queue), x)[0]
    torch.testing.assert_close(got, want)
