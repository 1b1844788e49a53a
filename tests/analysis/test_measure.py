"""Tests of aligniform.analysis.measure: the numbers of `aligniform analyze`."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aligniform import metrics
from aligniform.analysis import EmbeddingSet, analyze_embeddings, format_analysis
from aligniform.data import train_val_split
from tests.analysis.toy import unit_pairs


def test_numbers_equal_the_core_metrics():
    x, y, labels = unit_pairs()
    result = analyze_embeddings(EmbeddingSet(x, y, labels, "toy"))
    assert result["n"] == 300 and result["d"] == 12 and result["source"] == "toy"
    assert result["alignment"] == pytest.approx(metrics.alignment(x, y, alpha=2), rel=1e-12)
    assert result["uniformity"] == pytest.approx(metrics.uniformity(x, t=2), rel=1e-12)
    assert result["tolerance"] == pytest.approx(metrics.tolerance(x, labels), rel=1e-12)
    assert result["effective_rank"] == pytest.approx(metrics.effective_rank(x), rel=1e-12)
    fit, test = train_val_split(labels, 0.5, seed=0)
    expected = metrics.mean_classifier_accuracy(x[fit], labels[fit], x[test], labels[test])
    assert result["mean_classifier_acc"] == pytest.approx(expected)
    assert (result["mean_classifier_fit_rows"], result["mean_classifier_test_rows"]) == (150, 150)
    assert 0.5 < result["mean_classifier_acc"] <= 1.0  # clustered classes are separable
    assert result["norm_min"] == pytest.approx(1) and result["norm_max"] == pytest.approx(1)
    assert result["unit_norm_fraction"] == 1.0
    json.dumps(result)  # --json needs plain types


def test_alpha_t_and_sampled_uniformity_are_passed_on():
    x, y, labels = unit_pairs()
    result = analyze_embeddings(EmbeddingSet(x, y, labels), t=3.0, alpha=1.0, max_pairs=5000, seed=7)
    assert result["alignment"] == pytest.approx(metrics.alignment(x, y, alpha=1))
    assert result["uniformity"] == pytest.approx(metrics.uniformity(x, t=3, max_pairs=5000, seed=7))
    assert "5000 sampled pairs" in result["notes"]["uniformity"]


def test_torch_tensors_are_accepted():
    x, y, labels = unit_pairs()
    from_numpy = analyze_embeddings(EmbeddingSet(x, y, labels))
    from_torch = analyze_embeddings(
        EmbeddingSet(torch.from_numpy(x).float(), torch.from_numpy(y).float(), torch.from_numpy(labels))
    )
    for key in ("alignment", "uniformity", "tolerance", "mean_classifier_acc", "effective_rank"):
        assert from_torch[key] == pytest.approx(from_numpy[key], abs=1e-5)


def test_non_unit_norm_input_raises_unless_normalize():
    rng = np.random.default_rng(1)
    x, y = 3 * rng.normal(size=(50, 6)), 3 * rng.normal(size=(50, 6))
    with pytest.raises(ValueError, match="turn on `normalize`") as error:
        analyze_embeddings(EmbeddingSet(x, y))
    assert "`normalize`" in str(error.value)  # the option, rendered --normalize by the CLI
    result = analyze_embeddings(EmbeddingSet(x, y), normalize=True)
    unit_x, unit_y = F.normalize(torch.from_numpy(x), dim=1), F.normalize(torch.from_numpy(y), dim=1)
    assert result["normalized"] is True
    assert result["alignment"] == pytest.approx(metrics.alignment(x, y, normalize=True))
    assert result["uniformity"] == pytest.approx(metrics.uniformity(unit_x))
    assert result["effective_rank"] == pytest.approx(metrics.effective_rank(unit_x))
    assert result["alignment"] == pytest.approx(metrics.alignment(unit_x, unit_y))
    # Norm statistics describe the input as given, before normalisation.
    norms = np.linalg.norm(x, axis=1)
    assert result["norm_min"] == pytest.approx(norms.min()) and result["norm_mean"] == pytest.approx(norms.mean())
    assert result["norm_max"] == pytest.approx(norms.max()) and result["unit_norm_fraction"] == 0.0


def test_unit_norm_fraction_counts_rows_within_tolerance():
    x = F.normalize(torch.randn(10, 4, dtype=torch.float64), dim=1)
    x[:3] *= 1.1
    result = analyze_embeddings(EmbeddingSet(x), normalize=True)
    assert result["unit_norm_fraction"] == pytest.approx(0.7)
    assert result["norm_max"] == pytest.approx(1.1)


def test_missing_pairs_and_labels_skip_their_metrics_with_a_reason():
    x, _, _ = unit_pairs()
    result = analyze_embeddings(EmbeddingSet(x))
    assert result["alignment"] is None and result["tolerance"] is None and result["mean_classifier_acc"] is None
    assert "no positive partners" in result["notes"]["alignment"]
    assert "no labels" in result["notes"]["tolerance"]
    assert result["uniformity"] == pytest.approx(metrics.uniformity(x))
    text = format_analysis(result)
    assert "n/a" in text and "no labels" in text


def test_unlabelled_rows_are_left_out_and_one_class_skips_the_mean_classifier():
    x, y, labels = unit_pairs()
    labels = labels.copy()
    labels[::3] = -1
    result = analyze_embeddings(EmbeddingSet(x, y, labels))
    keep = labels >= 0
    assert result["tolerance"] == pytest.approx(metrics.tolerance(x[keep], labels[keep]))
    assert result["mean_classifier_fit_rows"] + result["mean_classifier_test_rows"] == int(keep.sum())
    one_class = analyze_embeddings(EmbeddingSet(x, y, np.zeros(len(x), dtype=int)))
    assert one_class["mean_classifier_acc"] is None and "two classes" in one_class["notes"]["mean_classifier_acc"]
    assert one_class["tolerance"] == pytest.approx(metrics.tolerance(x, np.zeros(len(x), dtype=int)))


def test_nan_values_are_reported():
    x = np.eye(3)
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        analyze_embeddings(EmbeddingSet(x), normalize=True)
