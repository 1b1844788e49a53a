"""SimCLR's NT-Xent: the loop reference, lightly's form, and the same-view negatives."""

import pytest

import aligniform as af
from aligniform.losses import NTXentLoss, nt_xent_loss
from tests.losses import plain
from tests.support.sphere import positive_pairs


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
