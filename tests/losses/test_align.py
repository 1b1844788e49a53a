"""Alignment loss (Wang & Isola 2020): float64 references and its closed form on the sphere."""

import pytest

import aligniform as af
from tests.support import reference as ref
from tests.support.sphere import positive_pairs

SIZES = [(2, 3), (5, 4), (17, 8), (33, 16)]


@pytest.mark.parametrize("n,d", SIZES)
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0])
def test_align_matches_reference(n, d, alpha):
    x, y = positive_pairs(n, d, seed=n)
    assert af.align_loss(x, y, alpha).item() == pytest.approx(ref.align(x, y, alpha), rel=1e-12, abs=1e-14)


def test_align_alpha2_is_two_minus_two_cosine():
    x, y = positive_pairs(50, 8)
    assert af.align_loss(x, y).item() == pytest.approx(2 - 2 * (x * y).sum(1).mean().item(), abs=1e-12)
