"""Two-tower metrics: modality gap, per-side uniformity, retrieval recall; `analyze PATH` and its JSON."""

import json
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aligniform import metrics
from aligniform.analysis import EmbeddingSet, analyze_embeddings
from aligniform.cli import main
from tests.support.sphere import positive_pairs, sphere


def reference_gap(x, y):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    centre_x = [sum(row[j] for row in x) / len(x) for j in range(x.shape[1])]
    centre_y = [sum(row[j] for row in y) / len(y) for j in range(y.shape[1])]
    return math.sqrt(sum((a - b) ** 2 for a, b in zip(centre_x, centre_y)))


def reference_recall(queries, keys, k):
    """A loop over queries: ties between the partner and other keys broken uniformly at random, in expectation."""
    queries, keys = np.asarray(queries, dtype=np.float64), np.asarray(keys, dtype=np.float64)
    total = 0.0
    for i, query in enumerate(queries):
        similarities = [float(np.dot(query, key)) for key in keys]
        greater = sum(s > similarities[i] for s in similarities)
        ties = sum(s == similarities[i] for j, s in enumerate(similarities) if j != i)
        total += min(1.0, max(0.0, (k - greater) / (ties + 1)))
    return total / len(queries)


def test_modality_gap_matches_a_plain_reference():
    x, y = positive_pairs(50, 7)
    assert metrics.modality_gap(x, y) == pytest.approx(reference_gap(x, y), rel=1e-12)
    assert metrics.modality_gap(x.numpy(), sphere(20, 7, seed=3)) == pytest.approx(
        reference_gap(x, sphere(20, 7, seed=3)), rel=1e-12
    )  # the two sides may differ in size
    assert metrics.modality_gap(x, x) == 0.0
    assert metrics.modality_gap(3 * x, 2 * y, normalize=True) == pytest.approx(reference_gap(x, y), rel=1e-12)
    with pytest.raises(ValueError, match="same feature width"):
        metrics.modality_gap(x, sphere(5, 3))
    with pytest.raises(ValueError, match="L2-normalised"):
        metrics.modality_gap(2 * x, y)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_retrieval_recall_matches_a_plain_reference(k):
    x, y = positive_pairs(60, 5, noise=0.8)
    assert metrics.retrieval_recall(x, y, k) == pytest.approx(reference_recall(x, y, k), rel=1e-12)
    assert metrics.retrieval_recall(y, x, k) == pytest.approx(reference_recall(y, x, k), rel=1e-12)
    assert metrics.retrieval_recalls(x, y, (1, k)) == {
        1: metrics.retrieval_recall(x, y),
        k: metrics.retrieval_recall(x, y, k),
    }


def test_retrieval_ties_and_collapse():
    collapsed = F.normalize(torch.ones(10, 4, dtype=torch.float64), dim=1)
    assert metrics.retrieval_recall(collapsed, collapsed, k=1) == pytest.approx(0.1)  # k/N, not 1
    assert metrics.retrieval_recall(collapsed, collapsed, k=5) == pytest.approx(0.5)
    assert metrics.retrieval_recall(collapsed, collapsed, k=50) == 1.0
    duplicated = torch.eye(4, dtype=torch.float64)[[0, 0, 1, 2]]  # rows 0 and 1 identical: a two-way tie each
    assert metrics.retrieval_recall(duplicated, duplicated) == pytest.approx(
        reference_recall(duplicated, duplicated, 1)
    )
    assert metrics.retrieval_recall(duplicated, duplicated) == pytest.approx(0.75)


def test_retrieval_in_blocks_and_sampled(monkeypatch):
    x, y = positive_pairs(300, 6, noise=1.0)
    exact = metrics.retrieval_recall(x, y)
    monkeypatch.setattr(metrics, "RETRIEVAL_BLOCK", 1000)  # 3 query rows per block
    assert metrics.retrieval_recall(x, y) == exact
    assert metrics.retrieval_recall(x, y, max_queries=10**6) == exact
    sampled = metrics.retrieval_recall(x, y, max_queries=100, seed=1)
    assert sampled == metrics.retrieval_recall(x, y, max_queries=100, seed=1)
    assert sampled == pytest.approx(exact, abs=0.15)
    with pytest.raises(ValueError, match="`k` must be a positive integer"):
        metrics.retrieval_recall(x, y, k=0)
    with pytest.raises(ValueError, match="same shape"):
        metrics.retrieval_recall(x, y[:10])


def known_gap_pairs(theta):
    """x = ±e_1..±e_4 (mean 0); y_i = cos θ x_i + sin θ e_5: unit rows whose centres are sin θ apart."""
    base = torch.cat([torch.eye(4), -torch.eye(4)]).double()
    x = torch.cat([base, torch.zeros(8, 1, dtype=torch.float64)], dim=1)
    shift = torch.zeros(8, 5, dtype=torch.float64)
    shift[:, 4] = 1.0
    return x, math.cos(theta) * x + math.sin(theta) * shift


@pytest.mark.parametrize("theta", [0.0, 0.3, 1.0])
def test_synthetic_two_towers_with_a_known_gap(theta):
    x, y = known_gap_pairs(theta)
    result = analyze_embeddings(EmbeddingSet(x, y, source="two towers"))
    assert result["modality_gap"] == pytest.approx(math.sin(theta), abs=1e-12)
    assert result["uniformity_y"] == pytest.approx(metrics.uniformity(y), rel=1e-12)
    assert result["uniformity"] == pytest.approx(metrics.uniformity(x), rel=1e-12)
    # Each y_i is closest to its own x_i (similarity cos θ; 0 or -cos θ to the others).
    for key in ("recall_at_1_x_to_y", "recall_at_1_y_to_x", "recall_at_5_x_to_y", "recall_at_5_y_to_x"):
        assert result[key] == 1.0
    assert "Liang" in result["notes"]["modality_gap"]


def test_analyze_without_partners_reports_a_null_gap():
    result = analyze_embeddings(EmbeddingSet(sphere(20, 4)))
    assert "modality_gap" in result and result["modality_gap"] is None
    assert result["recall_at_1_x_to_y"] is None and "no positive partners" in result["notes"]["modality_gap"]


def test_analyze_path_picks_the_reader_and_the_json_always_has_the_gap(tmp_path, capsys):
    x, y = positive_pairs(40, 8)
    np.savez(tmp_path / "pairs.npz", x=x.numpy(), y=y.numpy())
    assert main(["analyze", str(tmp_path / "pairs.npz"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["modality_gap"] == pytest.approx(metrics.modality_gap(x, y))
    assert result["recall_at_1_y_to_x"] == pytest.approx(metrics.retrieval_recall(y, x))
    assert result["uniformity_y"] == pytest.approx(metrics.uniformity(y))

    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "x.npy", x.numpy())
    assert main(["analyze", str(folder), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "modality_gap" in result and result["modality_gap"] is None  # no y.npy: no pairs

    assert main(["analyze", str(tmp_path / "pairs.npz")]) == 0
    assert "modality gap" in capsys.readouterr().out
    assert main(["analyze", str(folder / "x.npy")]) == 2  # one .npy array: read as arrays, a clear error
    assert ".npz" in capsys.readouterr().err


def shuffled_words(sentence, rng):
    words = sentence.rstrip(".").split()
    rng.shuffle(words)
    return " ".join(words)


def test_sentence_model_sentences_against_their_shuffled_words():
    from tests.integrations.sentences import PAIRS, load_packaged_model

    model = load_packaged_model()
    sentences = [text for pair in PAIRS for text in pair]
    rng = random.Random(0)
    shuffled = [shuffled_words(text, rng) for text in sentences]
    prefixed = ["A photo of: " + text for text in sentences]
    x, y, z = (
        model.encode(texts, convert_to_tensor=True, show_progress_bar=False).double()
        for texts in (sentences, shuffled, prefixed)
    )
    result = analyze_embeddings(EmbeddingSet(x, y, source="sentences vs shuffled words"), normalize=True)
    # The bag of words survives the shuffle: each sentence still finds its own shuffled version.
    assert result["recall_at_1_x_to_y"] > 0.85 and result["recall_at_1_y_to_x"] > 0.85
    assert result["modality_gap"] < 0.3
    # A constant prefix moves every embedding the same way: a larger gap, retrieval intact.
    prefixed_gap = metrics.modality_gap(x, z, normalize=True)
    assert prefixed_gap > result["modality_gap"] + 0.1
    assert metrics.retrieval_recall(x, z, normalize=True) > 0.85
    assert metrics.retrieval_recall(x, y.roll(1, 0), normalize=True) < 0.1  # mismatched pairs retrieve nothing
