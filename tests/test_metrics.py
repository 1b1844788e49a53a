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
    with pytest.raises(ValueError, match="turn on `normalize`"):
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
    with pytest.raises(ValueError, match="`max_pairs` must be a positive integer"):
        metrics.uniformity(x, max_pairs=max_pairs)
    assert metrics.uniformity(x, max_pairs=np.int64(50)) == pytest.approx(metrics.uniformity(x, max_pairs=50))


def test_mean_classifier_without_any_labelled_training_row_is_a_clear_error():
    z = F.normalize(torch.randn(6, 3), dim=1)
    with pytest.raises(ValueError, match="train_labels has no labelled sample"):
        metrics.mean_classifier_accuracy(z, [-1] * 6, z, [0] * 6)


# --------------------------------------------------------------------------- the metric registry and measure()


def test_registry_defines_each_metric_once_with_a_direction_and_needs():
    from aligniform.integrations.common import HIGHER_IS_BETTER, METRIC_KEYS
    from aligniform.metric_registry import METRICS, higher_is_better, metric_names, metric_spec

    names = [spec.name for spec in METRICS]
    assert len(names) == len(set(names)) == 11
    assert METRIC_KEYS == metric_names() == tuple(names)
    assert {spec.direction for spec in METRICS} <= {"lower", "higher"}
    assert HIGHER_IS_BETTER == {name for name in names if higher_is_better(name)}
    assert {name for name in names if not higher_is_better(name)} == {
        "alignment",
        "uniformity",
        "uniformity_y",
        "modality_gap",
    }
    assert {spec.name for spec in METRICS if spec.needs_labels} == {"tolerance", "mean_classifier_acc"}
    assert metric_spec("recall_at_5_y_to_x").needs_pairs and not metric_spec("uniformity").needs_pairs
    with pytest.raises(ValueError, match="unknown metric 'accuracy'"):
        metric_spec("accuracy")


def test_measure_equals_the_metric_functions_and_skips_what_it_cannot_compute():
    from aligniform.metric_registry import measure

    generator = torch.Generator().manual_seed(3)
    x = F.normalize(torch.randn(60, 5, generator=generator), dim=1)
    y = F.normalize(x + 0.3 * torch.randn(60, 5, generator=generator), dim=1)
    labels = torch.arange(60) % 3
    notes: dict[str, str] = {}
    values = measure(x, y, labels, t=3.0, alpha=1.0, notes=notes)
    assert values["alignment"] == metrics.alignment(x, y, alpha=1.0)
    assert values["uniformity"] == metrics.uniformity(x, t=3.0)
    assert values["uniformity_y"] == metrics.uniformity(y, t=3.0)
    assert values["tolerance"] == metrics.tolerance(x, labels)
    assert values["effective_rank"] == metrics.effective_rank(x)
    assert values["modality_gap"] == metrics.modality_gap(x, y)
    assert values["recall_at_5_y_to_x"] == metrics.retrieval_recall(y, x, k=5)
    assert set(notes) == set(values)
    alone = measure(x, t=3.0)
    assert alone["alignment"] is None and alone["tolerance"] is None and alone["recall_at_1_x_to_y"] is None
    assert alone["uniformity"] == values["uniformity"]
    # A metric asked for by name is computed or raises, never silently skipped.
    with pytest.raises(ValueError, match="labels"):
        measure(x, y, torch.arange(60), names=("tolerance",))  # no class of two


def test_measure_points_are_the_rows_of_the_one_sided_metrics():
    from aligniform.metric_registry import measure

    generator = torch.Generator().manual_seed(4)
    clean = F.normalize(torch.randn(40, 4, generator=generator), dim=1)
    view_a = F.normalize(clean + 0.2 * torch.randn(40, 4, generator=generator), dim=1)
    view_b = F.normalize(clean + 0.2 * torch.randn(40, 4, generator=generator), dim=1)
    labels = torch.arange(40) % 4
    on_clean = measure(view_a, view_b, labels, points=clean, names=("alignment", "uniformity", "tolerance"))
    assert on_clean == {
        "alignment": metrics.alignment(view_a, view_b),
        "uniformity": metrics.uniformity(clean),
        "tolerance": metrics.tolerance(clean, labels),
    }
    assert measure(view_a, view_b, names=("uniformity",))["uniformity"] == metrics.uniformity(view_a)


def test_measure_requires_unit_rows_unless_normalize():
    from aligniform.errors import OptionError
    from aligniform.metric_registry import measure

    raw = 3 * torch.randn(20, 4, generator=torch.Generator().manual_seed(5))
    with pytest.raises(OptionError) as error:
        measure(raw)
    assert error.value.options == ("x", "normalize")  # the input it refuses, and the option that fixes it
    assert measure(raw, normalize=True)["uniformity"] == metrics.uniformity(F.normalize(raw, dim=1))


def test_tolerance_takes_the_labels_aligniform_analyze_takes():
    # One rule (the shared check_labels): whole-number float labels count as classes, fractional ones are refused
    # with the same message by the metric and by the embedding files `aligniform analyze` reads.
    from aligniform.analysis.embeddings import EmbeddingSet

    z = torch.nn.functional.normalize(torch.randn(6, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    whole = np.array([0.0, 0, 1, 1, 2, 2])
    assert metrics.tolerance(z, whole) == metrics.tolerance(z, whole.astype(int))
    EmbeddingSet(z.numpy(), None, whole, source="test")
    for check in (lambda: metrics.tolerance(z, whole + 0.5), lambda: EmbeddingSet(z.numpy(), None, whole + 0.5)):
        with pytest.raises(ValueError, match="`labels` must hold integer class labels, got dtype"):
            check()
