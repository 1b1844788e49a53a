"""Tests of aligniform.analysis.checkpoint: two augmented views of a split through a checkpoint's encoder."""

import numpy as np
import pytest
import torch

from aligniform import metrics
from aligniform.analysis import analyze_embeddings, embeddings_from_checkpoint


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
