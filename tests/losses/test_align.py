"""Alignment loss (Wang & Isola 2020): float64 references and its closed form on the sphere."""

import math

import pytest
import torch
import torch.nn.functional as F

import aligniform as af
from tests.support import reference as ref
from tests.support.forms import SIZES
from tests.support.sphere import positive_pairs, sphere


@pytest.mark.parametrize("n,d", SIZES)
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0])
def test_align_matches_reference(n, d, alpha):
    x, y = positive_pairs(n, d, seed=n)
    assert af.align_loss(x, y, alpha).item() == pytest.approx(ref.align(x, y, alpha), rel=1e-12, abs=1e-14)


def test_align_alpha2_is_two_minus_two_cosine():
    x, y = positive_pairs(50, 8)
    assert af.align_loss(x, y).item() == pytest.approx(2 - 2 * (x * y).sum(1).mean().item(), abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_align_huge_alpha_is_exact_in_log_space_when_the_mean_fits(dtype):
    # alpha so large that N * 2^alpha overflows the dtype, yet the pairs' mean (of one distance above 1 and one
    # below) is representable: the log-space mean returns it.
    angle = torch.tensor([1.2, 0.9], dtype=torch.float64)  # chords 2 sin(angle / 2): 1.13 and 0.87
    x = torch.stack([torch.ones(2), torch.zeros(2)], dim=1).to(torch.float64)
    y = torch.stack([angle.cos(), angle.sin()], dim=1)
    d = (x - y).norm(dim=1)
    alpha = (math.log(torch.finfo(dtype).max) - 0.2) / float(d.log().max())
    expected = float(torch.logsumexp(alpha * d.log(), 0).exp() / 2)
    got = af.align_loss(x.to(dtype), y.to(dtype), alpha)
    assert math.isfinite(float(got))
    assert float(got) == pytest.approx(expected, rel=1e-3 if dtype == torch.float32 else 1e-9)


def test_align_alpha_that_overflows_float64_names_alpha():
    x, y = sphere(8, 4, seed=0), sphere(8, 4, seed=1)
    # The float64 reference overflows too: Python's float power raises.
    with pytest.raises(OverflowError):
        ref.align(x, y, 1e6)
    with pytest.raises(af.errors.OptionError, match=r"`alpha` \(1e\+06\) is too large: .* pass a smaller `alpha`"):
        af.align_loss(x, y, alpha=1e6)


def test_align_tiny_distances_with_huge_alpha_underflow_to_zero():
    x = sphere(8, 4, seed=0)
    y = F.normalize(x + 1e-3, dim=1)
    assert float(af.align_loss(x, y, alpha=1e6)) == 0.0
