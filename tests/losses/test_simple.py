"""Simple and HardSimple losses: references in every candidate form."""

import pytest

import aligniform as af
from tests.losses import plain
from tests.support import reference as ref
from tests.support.forms import FORMS, expected_batch_negatives
from tests.support.sphere import positive_pairs, sphere


@pytest.mark.parametrize("hard_alpha", [None, 0.2, 0.5])
@pytest.mark.parametrize("lam", [0.01, 1.0])
def test_simple_matches_reference(hard_alpha, lam):
    x, y = positive_pairs(15, 7)
    expected = ref.simple(x, y, lam, hard_alpha)
    assert af.simple_loss(x, y, lam, hard_alpha).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("hard_alpha", [None, 0.1, 0.5])
def test_simple_forms_match_loop(form, hard_alpha):
    symmetric, batch_negatives = FORMS[form]
    x, y = positive_pairs(7, 5, seed=4)
    queue = sphere(12, 5, seed=5)
    value = af.simple_loss(x, y, 0.2, hard_alpha, queue, symmetric=symmetric, batch_negatives=batch_negatives)
    expected = plain.simple(x, y, 0.2, queue, symmetric, expected_batch_negatives(form), hard_alpha)
    assert value.item() == pytest.approx(expected, rel=1e-11, abs=1e-12)
