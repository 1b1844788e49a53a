"""Asymptotic contrastive loss (Theorem 1): references and the M -> inf limit of InfoNCE."""

import math

import pytest
import torch

import aligniform as af
from tests.losses import plain
from tests.support import reference as ref
from tests.support.forms import FORMS, SIZES, expected_batch_negatives
from tests.support.sphere import positive_pairs, sphere


@pytest.mark.parametrize("n,d", SIZES)
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_asymptotic_matches_reference(n, d, tau):
    x, y = positive_pairs(n, d, seed=n)
    assert af.asymptotic_contrastive_loss(x, y, tau).item() == pytest.approx(ref.asymptotic(x, y, tau), rel=1e-10)


def test_contrastive_minus_log_m_converges_to_asymptotic_form():
    # Theorem 1: with features from a fixed distribution, L - log M approaches the limit as M grows.
    gaps = []
    for n in (16, 256, 2048):
        x, y = positive_pairs(n, 8, noise=0.5, seed=1, dtype=torch.float64)
        limit = af.asymptotic_contrastive_loss(x, y, 0.5).item()
        gaps.append(abs(af.contrastive_loss(x, y, 0.5).item() - math.log(n - 1) - limit))
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 2e-3


@pytest.mark.parametrize("form", sorted(FORMS))
def test_asymptotic_forms_match_loop(form):
    symmetric, batch_negatives = FORMS[form]
    x, y = positive_pairs(7, 5, seed=6)
    queue = sphere(12, 5, seed=7)
    value = af.asymptotic_contrastive_loss(x, y, 0.4, queue=queue, symmetric=symmetric, batch_negatives=batch_negatives)
    expected = plain.asymptotic(x, y, 0.4, queue, symmetric, expected_batch_negatives(form))
    assert value.item() == pytest.approx(expected, rel=1e-11)
