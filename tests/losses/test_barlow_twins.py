"""Barlow Twins (Zbontar et al. 2021): float64 reference written the slow way, gradients, bad inputs, sharding."""

import functools
import math

import pytest
import torch

import aligniform as af
from aligniform.distributed import Shard, cleanup_distributed, global_loss, init_distributed
from aligniform.losses import REGISTRY, BarlowTwinsLoss, barlow_twins_loss
from tests.support.distributed import launch, rows_of
from tests.support.sphere import leaves


def reference(x, y, lam):
    """The paper's definition, one number at a time in Python floats."""
    n, d = len(x), len(x[0])

    def standardised(z):
        columns = []
        for k in range(d):
            values = [float(z[i][k]) for i in range(n)]
            mean = sum(values) / n
            variance = sum((v - mean) ** 2 for v in values) / n  # biased, as BatchNorm1d in training
            columns.append([(v - mean) / math.sqrt(variance + 1e-5) for v in values])
        return columns  # columns[k][i]

    a, b = standardised(x), standardised(y)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[i][s] * b[j][s] for s in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lam * c**2
    return loss


def embeddings(n, d, seed=0, noise=0.5):
    """Raw (not unit-norm) projector outputs with an offset and uneven scales, as Barlow Twins sees them."""
    generator = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(n, d, generator=generator, dtype=torch.float64) + 1.5
    y = x * torch.linspace(0.5, 2, d, dtype=torch.float64) + noise * torch.randn(
        n, d, generator=generator, dtype=torch.float64
    )
    return x, y


@pytest.mark.parametrize("n,d", [(2, 3), (7, 4), (16, 8)])
@pytest.mark.parametrize("lam", [5e-3, 1.0])
def test_matches_reference(n, d, lam):
    x, y = embeddings(n, d, seed=n)
    assert barlow_twins_loss(x, y, lam).item() == pytest.approx(reference(x.tolist(), y.tolist(), lam), rel=1e-12)


def test_the_papers_lambda_is_the_default_and_the_module_and_term_agree():
    x, y = embeddings(12, 5)
    value = barlow_twins_loss(x, y)
    assert value.item() == pytest.approx(reference(x.tolist(), y.tolist(), 5e-3), rel=1e-12)
    torch.testing.assert_close(BarlowTwinsLoss()(x, y), value, rtol=0, atol=0)
    objective = af.Objective.parse("0.5*barlow_twins(lam=0.01)")
    torch.testing.assert_close(objective(x, y), 0.5 * barlow_twins_loss(x, y, 0.01), rtol=0, atol=0)
    assert str(objective) == "0.5*barlow_twins(lam=0.01)"
    assert REGISTRY["barlow_twins"] is BarlowTwinsLoss and not BarlowTwinsLoss.unit_features
    assert repr(BarlowTwinsLoss(lam=0.02)) == "BarlowTwinsLoss(lam=0.02)"


def test_invariant_to_each_dimensions_offset_and_scale():
    x, y = embeddings(10, 4)
    shifted = x * torch.tensor([2.0, 0.5, 3.0, 1.0], dtype=torch.float64) - 7
    # Up to the eps added to the variance (1e-5, against variances near 1 to 20).
    assert barlow_twins_loss(shifted, y).item() == pytest.approx(barlow_twins_loss(x, y).item(), rel=1e-4)


def test_gradcheck():
    x, y = embeddings(6, 3)
    inputs = leaves(x, y)
    assert torch.autograd.gradcheck(lambda a, b: barlow_twins_loss(a, b, 0.3), inputs)


def test_float32_input_is_computed_in_float32_or_more_and_returns_a_scalar():
    x, y = embeddings(8, 4)
    value = barlow_twins_loss(x.float(), y.float())
    assert value.shape == () and value.item() == pytest.approx(barlow_twins_loss(x, y).item(), rel=1e-4)


def test_bad_inputs():
    x, y = embeddings(6, 4)
    with pytest.raises(ValueError, match="`lam` must be a positive"):
        barlow_twins_loss(x, y, lam=0.0)
    with pytest.raises(ValueError, match="`lam` must be a positive"):
        BarlowTwinsLoss(lam=-1)
    with pytest.raises(ValueError, match="at least 2"):
        barlow_twins_loss(x[:1], y[:1])
    with pytest.raises(ValueError, match="same shape"):
        barlow_twins_loss(x, y[:4])
    bad = x.clone()
    bad[0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        barlow_twins_loss(bad, y)
    with pytest.raises(ValueError, match="no MoCo form"):
        af.Objective.parse("barlow_twins")(x, y, moco=True)


def test_one_rank_shard_is_the_plain_loss():
    x, y = embeddings(9, 4)
    torch.testing.assert_close(barlow_twins_loss(x, y, shard=Shard.of(x, y)), barlow_twins_loss(x, y))


SHARDS = [(3, 5), (1, 7), (4, 4)]


def _loss_and_grads(x, y, rows=None, world_size=1):
    if rows is not None:
        x, y = x[rows], y[rows]
    x, y = leaves(x, y)
    loss_fn = functools.partial(barlow_twins_loss, lam=0.05)
    loss = loss_fn(x, y) if rows is None else global_loss(loss_fn, x, y)
    grads = torch.autograd.grad(loss, [x, y])
    # Every rank's copy of the loss sends its gradient to these rows: P · dL/dx_r (DDP divides by P).
    return loss.item(), *(g / world_size for g in grads)


def _worker(rank):
    init_distributed(device="cpu", timeout_s=60)
    results = {counts: _loss_and_grads(*embeddings(sum(counts), 5), rows_of(rank, counts), 2) for counts in SHARDS}
    cleanup_distributed()
    return results


@pytest.mark.slow
def test_two_processes_give_the_one_process_loss_and_gradients(tmp_path):
    results = launch(_worker, tmp_path, world_size=2)
    for counts in SHARDS:
        loss, grad_x, grad_y = _loss_and_grads(*embeddings(sum(counts), 5))
        for rank in range(2):
            rows = rows_of(rank, counts)
            got_loss, got_x, got_y = results[rank][counts]
            assert got_loss == pytest.approx(loss, rel=1e-12)
            torch.testing.assert_close(got_x, grad_x[rows], rtol=1e-9, atol=1e-13)
            torch.testing.assert_close(got_y, grad_y[rows], rtol=1e-9, atol=1e-13)
