"""Metrics against slow references; numpy and torch inputs; chunking and sampling."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.distance import pdist

import aligniform as af
from aligniform import metrics
from tests.support import reference as ref
from tests.support.sphere import positive_pairs, sphere


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_alignment_matches_reference_and_loss(alpha):
    x, y = positive_pairs(40, 8)
    assert metrics.alignment(x, y, alpha) == pytest.approx(ref.align(x, y, alpha), rel=1e-12)
    assert metrics.alignment(x.numpy(), y.numpy(), alpha) == pytest.approx(af.align_loss(x, y, alpha).item())


@pytest.mark.parametrize("t", [1.0, 2.0, 8.0])
def test_uniformity_exact_matches_scipy_pdist(t):
    x = sphere(300, 10).numpy()
    expected = np.log(np.mean(np.exp(-t * pdist(x, "sqeuclidean"))))
    assert metrics.uniformity(x, t) == pytest.approx(expected, rel=1e-10)
    assert isinstance(metrics.uniformity(x, t), float)


def test_uniformity_sampled_estimate_is_close_and_seeded():
    x = sphere(3000, 16)
    exact = metrics.uniformity(x)
    estimates = [metrics.uniformity(x, max_pairs=50_000, seed=s) for s in range(5)]
    assert np.mean(estimates) == pytest.approx(exact, abs=0.01)
    assert metrics.uniformity(x, max_pairs=50_000, seed=3) == estimates[3]
    assert metrics.uniformity(x, max_pairs=10**9) == pytest.approx(exact)  # more than all pairs: exact


def test_uniformity_float32_large_input_chunked():
    x = F.normalize(torch.randn(20_000, 8), dim=1)
    value = metrics.uniformity(x, max_pairs=200_000)
    # Uniform points on S^7: E exp(-2||u-v||²) is a known constant; log of it ≈ -2.9.
    assert -3.1 < value < -2.7


def test_tolerance_matches_reference():
    z = sphere(60, 5)
    labels = np.random.default_rng(0).integers(0, 4, 60)
    assert metrics.tolerance(z, labels) == pytest.approx(ref.tolerance(z, labels), rel=1e-12)
    assert metrics.tolerance(z.numpy(), torch.as_tensor(labels)) == pytest.approx(ref.tolerance(z, labels), rel=1e-12)


def test_tolerance_ignores_unlabelled_and_needs_a_pair():
    z = sphere(6, 3)
    labels = np.array([0, 0, -1, 1, 1, -1])
    keep = labels >= 0
    assert metrics.tolerance(z, labels) == pytest.approx(ref.tolerance(z[keep], labels[keep]))
    with pytest.raises(ValueError, match="at least one class with two"):
        metrics.tolerance(sphere(3, 3), [0, 1, 2])


def test_mean_classifier_matches_reference():
    rng = np.random.default_rng(1)
    centers = sphere(5, 8, seed=3).numpy()
    train_labels, test_labels = rng.integers(0, 5, 200), rng.integers(0, 5, 80)
    train = centers[train_labels] + 0.6 * rng.standard_normal((200, 8))
    test = centers[test_labels] + 0.6 * rng.standard_normal((80, 8))
    expected = ref.mean_classifier(train, train_labels, test, test_labels)
    assert metrics.mean_classifier_accuracy(train, train_labels, test, test_labels) == pytest.approx(expected)
    assert 0.5 < expected < 1.0  # a meaningful case, neither trivial nor hopeless


def test_mean_classifier_with_non_contiguous_labels():
    train = np.array([[1.0, 0], [0, 1]])
    assert metrics.mean_classifier_accuracy(train, [7, 3], np.array([[0.1, 0.9], [0.9, 0.1]]), [3, 7]) == 1.0


@pytest.mark.parametrize("shape", [(50, 8), (6, 20), (200, 3)])
def test_effective_rank_matches_svd(shape):
    z = torch.randn(*shape, dtype=torch.float64) * torch.linspace(0.1, 2, shape[1], dtype=torch.float64)
    assert metrics.effective_rank(z) == pytest.approx(ref.effective_rank(z), rel=1e-6)


def test_effective_rank_extremes():
    assert metrics.effective_rank(np.ones((10, 4))) == pytest.approx(1.0)
    assert metrics.effective_rank(np.eye(6)) == pytest.approx(6.0)


def test_metrics_accept_normalize_flag():
    x, y = positive_pairs(30, 4)
    assert metrics.alignment(3 * x, 2 * y, normalize=True) == pytest.approx(metrics.alignment(x, y))
    assert metrics.uniformity(5 * x, normalize=True) == pytest.approx(metrics.uniformity(x))
    with pytest.raises(ValueError, match="normalize=True"):
        metrics.uniformity(5 * x)


def test_mean_classifier_binary_loss_matches_a_hand_written_loop():
    generator = torch.Generator().manual_seed(3)
    train_z = F.normalize(torch.randn(30, 4, generator=generator, dtype=torch.float64), dim=1)
    train_labels = torch.arange(30) % 3
    test_z = F.normalize(torch.randn(9, 4, generator=generator, dtype=torch.float64), dim=1)
    test_labels = torch.arange(9) % 3
    probs = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    result = metrics.mean_classifier_evaluation(train_z, train_labels, test_z, test_labels, probs)
    means = [train_z[train_labels == c].mean(0) for c in range(3)]
    collision = float((probs**2).sum())
    total = 0.0
    for z, c in zip(test_z, test_labels.tolist()):
        for other in range(3):
            if other != c:
                margin = float(z @ (means[c] - means[other]))
                total += probs[other].item() * np.log1p(np.exp(-margin)) / (1 - collision)
    assert result["binary_loss"] == pytest.approx(total / 9, abs=1e-12)


@pytest.mark.parametrize("max_pairs", [1.5, 2.0, True, "10", 0, -1])
def test_uniformity_max_pairs_must_be_a_positive_integer(max_pairs):
    x = F.normalize(torch.randn(20, 4), dim=1)
    with pytest.raises(ValueError, match="max_pairs must be a positive integer"):
        metrics.uniformity(x, max_pairs=max_pairs)
    assert metrics.uniformity(x, max_pairs=np.int64(50)) == pytest.approx(metrics.uniformity(x, max_pairs=50))


def test_mean_classifier_without_any_labelled_training_row_is_a_clear_error():
    z = F.normalize(torch.randn(6, 3), dim=1)
    with pytest.raises(ValueError, match="train_labels has no labelled sample"):
        metrics.mean_classifier_accuracy(z, [-1] * 6, z, [0] * 6)
