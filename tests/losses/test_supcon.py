"""Supervised contrastive loss (Khosla et al. 2020): reference, NT-Xent identity, queue, gradients, bad inputs."""

import numpy as np
import pytest
import torch

import aligniform as af
from aligniform.losses import SupervisedContrastiveLoss, nt_xent_loss, supervised_contrastive_loss
from aligniform.losses.engine import logsumexp as tiles
from tests.support import reference as ref
from tests.support.sphere import leaves, positive_pairs, sphere


def _labels(n, classes, seed=0):
    return torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n,d,classes", [(2, 3, 1), (5, 4, 2), (17, 8, 3), (33, 16, 40)])
@pytest.mark.parametrize("tau", [0.05, 0.2, 1.0])
def test_matches_reference(n, d, classes, tau):
    x, y = positive_pairs(n, d, seed=n)
    labels = _labels(n, classes, seed=n)
    value = supervised_contrastive_loss(x, y, labels, tau).item()
    assert value == pytest.approx(ref.supervised_contrastive(x, y, labels, tau), rel=1e-11)


@pytest.mark.parametrize("n,k", [(1, 4), (6, 1), (9, 13)])
def test_queue_with_labels_matches_reference(n, k):
    x, y = positive_pairs(n, 5, seed=k)
    queue, labels, queue_labels = sphere(k, 5, seed=k + 1), _labels(n, 3, seed=1), _labels(k, 4, seed=2)
    value = supervised_contrastive_loss(x, y, labels, 0.3, queue=queue, queue_labels=queue_labels).item()
    assert value == pytest.approx(ref.supervised_contrastive(x, y, labels, 0.3, queue, queue_labels), rel=1e-11)


@pytest.mark.parametrize("n", [2, 7, 64])
@pytest.mark.parametrize("tau", [0.01, 0.1, 0.5])
def test_distinct_labels_give_nt_xent(n, tau):
    # Every anchor's only positive is its other view: SimCLR's loss, 2N - 2 negatives with the same-view ones.
    x, y = positive_pairs(n, 8, seed=n)
    supervised = supervised_contrastive_loss(x, y, torch.arange(n), tau)
    assert supervised.item() == pytest.approx(nt_xent_loss(x, y, tau).item(), rel=1e-12)
    shuffled = supervised_contrastive_loss(x, y, torch.randperm(n) * 7 - 3, tau)
    assert shuffled.item() == pytest.approx(supervised.item(), rel=1e-12)


def test_labels_as_numpy_and_any_integer_values():
    x, y = positive_pairs(8, 4)
    labels = np.array([5, -2, 5, 9, 9, -2, 0, 5], dtype=np.int32)
    value = supervised_contrastive_loss(x, y, labels, 0.2).item()
    assert value == pytest.approx(ref.supervised_contrastive(x, y, labels, 0.2), rel=1e-11)


@pytest.mark.parametrize("tau", [0.01, 0.2])
@pytest.mark.parametrize("keep_tiles", [True, False])
def test_tiles_that_do_not_divide_n(tau, keep_tiles, monkeypatch):
    # Small tiles (7 x 5) and both numerical paths (tau = 0.01 needs the shifted one); the gradient too.
    x, y = positive_pairs(23, 6, seed=4)
    labels = _labels(23, 4)
    whole = leaves(x, y)
    expected = supervised_contrastive_loss(*whole, labels, tau)
    expected.backward()
    monkeypatch.setattr(tiles, "BLOCK_COLUMNS", 5)
    monkeypatch.setattr(tiles, "BLOCK_ELEMENTS", 35)
    if not keep_tiles:
        monkeypatch.setattr(tiles, "SAVED_ELEMENTS", 0)
    tiled = leaves(x, y)
    value = supervised_contrastive_loss(*tiled, labels, tau)
    value.backward()
    assert value.item() == pytest.approx(expected.item(), rel=1e-12)
    for a, b in zip(tiled, whole):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def test_gradcheck_in_features_and_temperature():
    x, y = positive_pairs(6, 4, seed=3)
    queue, labels, queue_labels = sphere(3, 4, seed=5), _labels(6, 2), _labels(3, 2, seed=1)
    inputs = leaves(x, y, 0.3)
    assert torch.autograd.gradcheck(lambda a, b, t: supervised_contrastive_loss(a, b, labels, t), inputs)
    assert torch.autograd.gradcheck(
        lambda a, b, t: supervised_contrastive_loss(a, b, labels, t, queue, queue_labels), inputs
    )


def test_float32_at_small_temperature_matches_float64():
    x, y = positive_pairs(64, 16, seed=2)
    labels = _labels(64, 5)
    value = supervised_contrastive_loss(x.float(), y.float(), labels, 0.01).item()
    assert value == pytest.approx(supervised_contrastive_loss(x, y, labels, 0.01).item(), rel=1e-4)


def test_bf16_autocast_stays_close():
    x, y = positive_pairs(32, 16, seed=2)
    labels = _labels(32, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = supervised_contrastive_loss(x.float(), y.float(), labels, 0.2)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(supervised_contrastive_loss(x, y, labels, 0.2).item(), rel=1e-5)


def test_module_registers_a_learnable_temperature():
    tau = torch.nn.Parameter(torch.tensor(0.2))
    module = SupervisedContrastiveLoss(tau=tau)
    assert [name for name, _ in module.named_parameters()] == ["tau"]
    x, y = positive_pairs(8, 4, dtype=torch.float32)
    module(x, y, _labels(8, 3)).backward()
    assert tau.grad is not None and torch.isfinite(tau.grad)
    assert "tau=0.2" in repr(module)


@pytest.mark.parametrize(
    "labels,message",
    [
        (torch.zeros(5, dtype=torch.long), "one label per row"),
        (torch.zeros(6, 1, dtype=torch.long), "1-D"),
        (torch.zeros(6), "integer class labels"),
        (np.zeros(6), "integer class labels"),
        (torch.zeros(6, dtype=torch.bool), "integer class labels"),
        (["a"] * 6, "numbers"),
    ],
)
def test_bad_labels(labels, message):
    x, y = positive_pairs(6, 4)
    with pytest.raises(ValueError, match=message):
        supervised_contrastive_loss(x, y, labels, 0.1)


def test_bad_queue_and_temperature():
    x, y = positive_pairs(6, 4)
    labels, queue = _labels(6, 2), sphere(3, 4)
    with pytest.raises(ValueError, match="queue_labels go together"):
        supervised_contrastive_loss(x, y, labels, 0.1, queue=queue)
    with pytest.raises(ValueError, match="queue_labels go together"):
        supervised_contrastive_loss(x, y, labels, 0.1, queue_labels=_labels(3, 2))
    with pytest.raises(ValueError, match="`queue_labels` must be a 1-D vector with one label per row"):
        supervised_contrastive_loss(x, y, labels, 0.1, queue=queue, queue_labels=_labels(4, 2))
    with pytest.raises(ValueError, match="tau"):
        supervised_contrastive_loss(x, y, labels, 0.0)
    with pytest.raises(ValueError, match="L2-normalised"):
        supervised_contrastive_loss(2 * x, y, labels, 0.1)
    with pytest.raises(ValueError, match="at least 2"):
        supervised_contrastive_loss(x[:1], y[:1], labels[:1], 0.1)


def test_objective_term_passes_labels():
    x, y = positive_pairs(10, 4, dtype=torch.float32)
    labels = _labels(10, 3)
    objective = af.Objective.parse("supervised_contrastive(tau=0.2) + 0.5*uniform(t=2)")
    assert objective.uses_labels and not af.Objective.parse("contrastive").uses_labels
    value = objective(x, y, labels=labels)
    expected = supervised_contrastive_loss(x, y, labels, 0.2) + 0.5 * af.losses.two_view_uniform_loss(x, y, 2.0)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="needs the batch's labels"):
        objective(x, y)
    with pytest.raises(ValueError, match="no MoCo form"):
        objective(x, y, labels=labels, moco=True)
