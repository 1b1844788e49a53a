"""HypersphereMetrics (a torchmetrics.Metric): equal to aligniform.metrics, streaming, synchronised across processes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("torchmetrics", reason="torchmetrics is not installed (extra: integrations)")

from aligniform import metrics  # noqa: E402
from aligniform.analysis import EmbeddingSet, analyze_embeddings  # noqa: E402
from aligniform.integrations.torchmetrics import HypersphereMetrics  # noqa: E402
from tests.support.distributed import launch  # noqa: E402
from tests.support.sphere import positive_pairs  # noqa: E402


def labelled_pairs(n=90, d=6, seed=0):
    x, y = positive_pairs(n, d, seed=seed)
    labels = torch.as_tensor(np.random.default_rng(seed).integers(0, 3, n))
    return x, y, labels


def test_values_equal_aligniform_metrics_on_the_same_arrays():
    x, y, labels = labelled_pairs()
    metric = HypersphereMetrics(normalize=False)
    for rows in torch.arange(len(x)).split(25):  # uneven batches
        metric.update(x[rows], y[rows], labels[rows])
    values = metric.compute()
    assert all(value.dtype == torch.float64 for value in values.values())
    assert float(values["alignment"]) == pytest.approx(metrics.alignment(x, y), rel=1e-12)
    assert float(values["uniformity"]) == pytest.approx(metrics.uniformity(x), rel=1e-12)
    assert float(values["uniformity_y"]) == pytest.approx(metrics.uniformity(y), rel=1e-12)
    assert float(values["tolerance"]) == pytest.approx(metrics.tolerance(x, labels), rel=1e-12)
    assert float(values["effective_rank"]) == pytest.approx(metrics.effective_rank(x), rel=1e-12)
    assert float(values["modality_gap"]) == pytest.approx(metrics.modality_gap(x, y), rel=1e-12)
    assert float(values["recall_at_5_y_to_x"]) == metrics.retrieval_recall(y, x, k=5)
    analysis = analyze_embeddings(EmbeddingSet(x, y, labels))  # the mean classifier's seeded half split
    assert float(values["mean_classifier_acc"]) == analysis["mean_classifier_acc"]


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_normalizes_by_default_and_resets():
    x, y, _ = labelled_pairs()
    metric = HypersphereMetrics(t=3.0, alpha=1.0)
    metric.update(3 * x, 0.5 * y)
    values = metric.compute()
    assert "tolerance" not in values and "mean_classifier_acc" not in values  # no labels
    assert float(values["uniformity"]) == pytest.approx(metrics.uniformity(x, t=3.0), rel=1e-12)
    assert float(values["alignment"]) == pytest.approx(metrics.alignment(x, y, alpha=1.0), rel=1e-12)
    metric.reset()
    with pytest.raises(ValueError, match="before any update"):
        metric.compute()
    metric.update(x[:10], y[:10], torch.zeros(10, dtype=torch.long))  # labels allowed again after reset


def test_sampled_mode_for_large_sets():
    x = F.normalize(torch.randn(3000, 16, dtype=torch.float64), dim=1)
    metric = HypersphereMetrics(max_pairs=100_000, seed=2)
    metric.update(x, x)
    assert float(metric.compute()["uniformity"]) == metrics.uniformity(x, max_pairs=100_000, seed=2)
    assert float(metric.compute()["uniformity"]) == pytest.approx(metrics.uniformity(x), abs=0.02)


def test_bad_updates_are_clear_errors():
    metric = HypersphereMetrics()
    with pytest.raises(ValueError, match="same shape"):
        metric.update(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="2-D floating-point"):
        metric.update(torch.randn(4), torch.randn(4))
    metric.update(torch.randn(4, 3), torch.randn(4, 3))
    with pytest.raises(ValueError, match="labels with every update or with none"):
        metric.update(torch.randn(4, 3), torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="max_pairs"):
        HypersphereMetrics(max_pairs=0)


def test_an_update_of_another_width_is_a_clear_error():
    metric = HypersphereMetrics()
    metric.update(torch.randn(4, 3), torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"have 5 columns but earlier updates had 3: .*call reset\(\)"):
        metric.update(torch.randn(4, 5), torch.randn(4, 5))
    metric.reset()
    metric.update(torch.randn(4, 5), torch.randn(4, 5))  # a new model after reset() may have another width


ROWS_PER_RANK = (37, 53)  # uneven shards: the gather must handle them


def _rank_values(rank):
    import torch.distributed as dist

    dist.init_process_group("gloo")
    try:
        x, y, labels = labelled_pairs(sum(ROWS_PER_RANK))
        start = sum(ROWS_PER_RANK[:rank])
        rows = slice(start, start + ROWS_PER_RANK[rank])
        metric = HypersphereMetrics()
        for part in torch.arange(rows.start, rows.stop).split(20):
            metric.update(x[part], y[part], labels[part])
        return {key: float(value) for key, value in metric.compute().items()}
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_on_the_union(tmp_path):
    results = launch(_rank_values, tmp_path)
    x, y, labels = labelled_pairs(sum(ROWS_PER_RANK))
    single = HypersphereMetrics()
    single.update(x, y, labels)
    expected = {key: float(value) for key, value in single.compute().items()}
    assert set(results[0]) == set(expected) == set(results[1])
    for rank in (0, 1):
        for key, value in expected.items():
            assert results[rank][key] == pytest.approx(value, rel=1e-9, abs=1e-9), (rank, key)
