"""aligniform.analysis.compare: estimates equal the metrics on the same arrays; intervals from honest resamples."""

import json

import numpy as np
import pytest

from aligniform import metrics
from aligniform.analysis import EmbeddingSet
from aligniform.analysis import compare as compare_module
from aligniform.analysis.compare import CompareSet, compare_embeddings
from aligniform.analysis.compare_inputs import (
    CompareInput,
    check_compare_inputs,
    load_compare_input,
    read_scored_pairs,
)
from aligniform.analysis.compare_page import (
    COMPARE_FILES,
    check_compare_output,
    compare_html,
    format_comparison,
    write_comparison,
)
from aligniform.errors import OptionError
from aligniform.stats import bootstrap_indices

from .toy import unit_pairs


@pytest.fixture(scope="module")
def compared():
    x, y, labels = unit_pairs(n=240, d=10)
    far_x, far_y, far_labels = unit_pairs(n=200, d=10, seed=1)
    rng = np.random.default_rng(2)
    far_y = far_y + 0.8 * rng.normal(size=far_y.shape)
    far_y /= np.linalg.norm(far_y, axis=1, keepdims=True)
    sets = {"near": EmbeddingSet(x, y, labels), "far": EmbeddingSet(far_x, far_y, far_labels)}
    return sets, compare_embeddings(sets, resamples=300)


def test_estimates_equal_the_metrics_on_the_same_arrays(compared):
    sets, result = compared
    assert [row["name"] for row in result["inputs"]] == ["near", "far"]
    for row, emb in zip(result["inputs"], sets.values()):
        table = row["metrics"]
        assert table["alignment"]["estimate"] == pytest.approx(metrics.alignment(emb.x, emb.y), rel=1e-9)
        assert table["uniformity"]["estimate"] == pytest.approx(metrics.uniformity(emb.x), rel=1e-9)
        assert table["tolerance"]["estimate"] == pytest.approx(metrics.tolerance(emb.x, emb.labels), rel=1e-9)
        assert table["effective_rank"]["estimate"] == pytest.approx(metrics.effective_rank(emb.x), rel=1e-9)
        assert table["recall_at_1_x_to_y"]["estimate"] == pytest.approx(metrics.retrieval_recall(emb.x, emb.y))
        assert table["modality_gap"]["estimate"] == pytest.approx(metrics.modality_gap(emb.x, emb.y), rel=1e-9)
        for value in table.values():
            assert value["low"] <= value["estimate"] <= value["high"]
        assert row["n_pairs"] == row["n_points"] == emb.n
    near, far = (row["metrics"]["alignment"] for row in result["inputs"])
    assert near["high"] < far["low"]  # the intervals separate a clearly better aligned encoder
    json.dumps(result, allow_nan=False)  # plain JSON


def test_resampled_statistics_equal_a_direct_computation_on_each_resample():
    x, y, labels = unit_pairs(n=60, d=6)
    draws = bootstrap_indices(60, 5, seed=3)
    counts = compare_module._counts(draws, 60)
    uniformity = compare_module._uniformity_samples(x, counts, 2.0)
    tolerance = compare_module._tolerance_samples(x, labels, counts)
    ranks = compare_module._rank_samples(x, counts)
    credits = compare_module._recall_credits(x, y)
    assert credits.mean() == pytest.approx(metrics.retrieval_recall(x, y))
    for r, draw in enumerate(draws):
        # Pairs of drawn positions that are two different rows: a row drawn twice is no pair with itself.
        a, b = np.triu_indices(60, k=1)
        distinct = draw[a] != draw[b]
        i, j = draw[a][distinct], draw[b][distinct]
        squared = ((x[i] - x[j]) ** 2).sum(axis=1)
        assert uniformity[r] == pytest.approx(np.log(np.exp(-2 * squared).mean()), rel=1e-9)
        same = labels[i] == labels[j]
        assert tolerance[r] == pytest.approx((x[i][same] * x[j][same]).sum(axis=1).mean(), rel=1e-9)
        assert ranks[r] == pytest.approx(metrics.effective_rank(x[draw]), rel=1e-9)


def test_points_give_the_one_sided_metrics_and_pairs_the_rest():
    x, y, _ = unit_pairs(n=80, d=8)
    points, _, _ = unit_pairs(n=150, d=8, seed=5)
    result = compare_embeddings({"a": CompareSet(EmbeddingSet(x, y), points)}, resamples=50)
    row = result["inputs"][0]
    assert row["metrics"]["uniformity"]["estimate"] == pytest.approx(metrics.uniformity(points), rel=1e-9)
    assert row["metrics"]["alignment"]["estimate"] == pytest.approx(metrics.alignment(x, y), rel=1e-9)
    assert (row["n_pairs"], row["n_points"]) == (80, 150)


def test_inputs_without_pairs_or_labels_and_the_options():
    z = np.random.default_rng(0).normal(size=(30, 4))
    with pytest.raises(OptionError, match="`normalize`"):
        compare_embeddings({"raw": EmbeddingSet(z)})
    result = compare_embeddings({"raw": EmbeddingSet(z)}, normalize=True, resamples=20)
    table = result["inputs"][0]["metrics"]
    assert table["alignment"] is None and table["tolerance"] is None and table["uniformity"] is not None
    text = format_comparison(result)
    assert "alignment" not in text.splitlines()[0] and "uniformity (t=2)" in text
    with pytest.raises(OptionError, match="at least one input"):
        compare_embeddings({})
    with pytest.raises(ValueError, match="resamples"):
        compare_embeddings({"raw": EmbeddingSet(z)}, normalize=True, resamples=0)


def test_uniformity_interval_is_skipped_above_the_row_limit(monkeypatch):
    monkeypatch.setattr(compare_module, "BOOTSTRAP_MAX_ROWS", 50)
    x, y, _ = unit_pairs(n=60, d=6)
    row = compare_embeddings({"a": EmbeddingSet(x, y)}, resamples=20)["inputs"][0]
    assert row["metrics"]["uniformity"]["low"] is None
    assert "more than 50 rows" in row["notes"]["uniformity_interval"]


def write_tsv(path, rows):
    path.write_text("".join("\t".join(map(str, row)) + "\n" for row in rows), encoding="utf-8")
    return path


class FakeModel:
    """A deterministic stand-in for a SentenceTransformer: a seeded vector per text."""

    def encode(self, texts, **options):
        vectors = [np.random.default_rng(sum(map(ord, text))).normal(size=8) for text in texts]
        return np.asarray(vectors, dtype=np.float32)


def test_simcse_protocol_alignment_over_high_scores_uniformity_over_every_sentence(tmp_path, monkeypatch):
    rows = [("s1", "s2", "score"), ("a cat", "a kitten", 4.8), ("the sea", "the ocean", 4.2),
            ("a dog", "a car", 0.5), ("red", "blue", 1.0), ("up", "down", 4.0), ("a cat", "a feline", 5)]  # fmt: skip
    pairs_file = write_tsv(tmp_path / "sts.tsv", rows)
    scored = read_scored_pairs(pairs_file)
    assert scored.scores.tolist() == [4.8, 4.2, 0.5, 1.0, 4.0, 5.0]
    monkeypatch.setattr("aligniform.analysis.sentences.load_sentence_model", lambda path, device=None: FakeModel())
    item = CompareInput("model", "model", "sentence", "model")
    compare_set = load_compare_input(item, scored, min_score=4.2)
    texts = list(dict.fromkeys([r[0] for r in rows[1:]] + [r[1] for r in rows[1:]]))
    embedded = FakeModel().encode(texts)
    unit = embedded / np.linalg.norm(embedded, axis=1, keepdims=True)
    kept = [(r[0], r[1]) for r in rows[1:] if float(r[2]) >= 4.2]
    x = unit[[texts.index(a) for a, _ in kept]]
    y = unit[[texts.index(b) for _, b in kept]]
    row = compare_embeddings({"model": compare_set}, normalize=True, resamples=30)["inputs"][0]
    assert (row["n_pairs"], row["n_points"]) == (3, len(texts)) == (3, 11)
    assert row["metrics"]["alignment"]["estimate"] == pytest.approx(metrics.alignment(x, y), rel=1e-5)
    assert row["metrics"]["uniformity"]["estimate"] == pytest.approx(metrics.uniformity(unit), rel=1e-5)
    assert "3 pairs scored >= 4.2, 11 sentences" in row["source"]
    everything = load_compare_input(item, scored)
    assert everything.embeddings.n == 6


def test_inputs_are_checked_before_any_work(tmp_path):
    x, y, _ = unit_pairs(n=20, d=4)
    np.savez(tmp_path / "a.npz", x=x, y=y)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"")
    inputs, pairs = check_compare_inputs([tmp_path / "a.npz", tmp_path / "run", str(tmp_path / "a.npz")])
    assert [(item.name, item.kind) for item in inputs] == [("a", "file"), ("run", "checkpoint"), ("a (2)", "file")]
    assert inputs[1].path.endswith("checkpoint.pt") and pairs is None
    with pytest.raises(OptionError, match="'nope.npz' does not exist"):
        check_compare_inputs(["nope.npz"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(OptionError, match="is a folder with no x.npy"):
        check_compare_inputs([tmp_path / "empty"])
    with pytest.raises(OptionError, match="`min_score` filters the pairs a sentence model embeds"):
        check_compare_inputs([tmp_path / "a.npz"], min_score=4.0)
    model = tmp_path / "model"
    model.mkdir()
    (model / "modules.json").write_text("[]")
    with pytest.raises(OptionError, match="a sentence model needs `pairs`"):
        check_compare_inputs([model])
    two = write_tsv(tmp_path / "two.tsv", [("a", "b"), ("c", "d")])
    with pytest.raises(OptionError, match="`min_score` needs a score column"):
        check_compare_inputs([model], two, min_score=4.0)
    scored = write_tsv(tmp_path / "scored.tsv", [("a", "b", 1), ("c", "d", 5)])
    with pytest.raises(OptionError, match="`min_score` 4 keeps 1 pair"):
        check_compare_inputs([model], scored, min_score=4.0)
    bad = write_tsv(tmp_path / "bad.tsv", [("a", "b", "1"), ("c", "d", "high")])
    with pytest.raises(OptionError, match="score of pair 2 is not a number"):
        check_compare_inputs([model], bad)
    with pytest.raises(OptionError, match="`pairs` file .* does not exist"):
        check_compare_inputs([model], tmp_path / "missing.tsv")


def test_output_folder_is_checked_and_never_overwritten_silently(tmp_path):
    x, y, labels = unit_pairs(n=40, d=4)
    result = compare_embeddings({"a": EmbeddingSet(x, y, labels)}, resamples=20)
    out = tmp_path / "out"
    (out).mkdir()
    (out / "notes.txt").write_text("mine")
    written = write_comparison(result, check_compare_output(out))
    assert sorted(path.name for path in written) == sorted(COMPARE_FILES)
    assert json.loads((out / "compare.json").read_text())["inputs"][0]["name"] == "a"
    with pytest.raises(
        OptionError, match="already holds compare.json, compare.html, plane.png, plane.svg; pass `overwrite`"
    ):
        check_compare_output(out)
    assert check_compare_output(out, overwrite=True) == out
    assert (out / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("")
    with pytest.raises(OptionError, match="`out` .* is a file, not a folder"):
        check_compare_output(tmp_path / "file")


def test_html_page_is_self_contained_and_highlights_the_best():
    x, y, _ = unit_pairs(n=40, d=4)
    far = y[::-1].copy()
    result = compare_embeddings({"near": EmbeddingSet(x, y), "<far>": EmbeddingSet(x, far)}, resamples=20)
    page = compare_html(result, b"\x89PNG")
    assert "script-src 'none'" in page and "<script" not in page
    assert "&lt;far&gt;" in page and "data:image/png;base64," in page
    best_alignment = f"{result['inputs'][0]['metrics']['alignment']['estimate']:.4f}"
    assert f'<td class="number best">{best_alignment}' in page
