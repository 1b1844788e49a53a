"""The studies end to end on tiny settings, and the numbers they rest on."""

import json

import pytest
import torch
import torch.nn.functional as F

from aligniform import asymptotic_contrastive_loss
from aligniform.studies.common import build_options
from aligniform.studies.latent_classes import LatentClassesOptions, run_latent_classes_study
from aligniform.studies.temperature import run_temperature_study
from aligniform.studies.theorem1 import anchor_limit_terms, run_theorem1_study


def assert_outputs(out, name, figures):
    for path in (out / f"{name}.json", out / f"{name}.md"):
        assert path.is_file() and path.stat().st_size > 0, path
    json.loads((out / f"{name}.json").read_text())  # strict JSON (no NaN)
    for figure in figures:
        assert (out / figure).is_file(), figure


# ---------------------------------------------------------------------------- Theorem 1


def test_limit_terms_average_to_asymptotic_loss():
    """The per-anchor limit terms pair anchors with the same negatives as asymptotic_contrastive_loss."""
    x, y = F.normalize(torch.randn(2, 300, 8, dtype=torch.float64), dim=-1)
    terms = anchor_limit_terms(x, y, [0.3, 1.0], rows_per_chunk=64)
    for tau in (0.3, 1.0):
        assert terms[tau].mean().item() == pytest.approx(asymptotic_contrastive_loss(x, y, tau).item(), abs=1e-10)


def test_theorem1_gap_shrinks_on_synthetic_features(tmp_path):
    results = run_theorem1_study(
        tmp_path,
        encoder="none",
        taus=(0.5,),
        negatives=(1, 4, 16, 64, 256),
        population=2048,
        repeats=16,
        progress=False,
    )
    curve = results["synthetic"]["curves"]["0.5"]
    gaps = [abs(row["gap"]) for row in curve["rows"]]
    assert all(later < earlier for earlier, later in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 0.05 and gaps[-1] < gaps[0] / 20
    assert curve["gap_shrinks"]
    assert -1.4 < curve["slope"] < -0.6  # finite-M corrections are O(1/M)
    # ... with the first-order coefficient predicted from the population: M · gap → c.
    assert curve["rows"][-1]["m_times_gap"] == pytest.approx(curve["predicted_m_times_gap"], rel=0.25)
    # The raw L − log M approaches the population limit too (not only the paired gap).
    assert abs(curve["rows"][-1]["loss_minus_log_m"] - curve["limit"]) < 0.05
    assert_outputs(tmp_path, "theorem1", ["theorem1_synthetic.png", "theorem1_gap.png", "theorem1_gap.svg"])


def test_theorem1_on_a_random_encoder(tmp_path):
    results = run_theorem1_study(
        tmp_path,
        encoder="random",
        dataset="digits",
        views_per_image=2,
        taus=(0.5,),
        negatives=(1, 8, 64),
        population=1024,
        repeats=4,
        progress=False,
    )
    curve = results["encoder"]["curves"]["0.5"]
    assert results["encoder"]["population"] == 2 * 359
    assert [row["M"] for row in curve["rows"]] == [1, 8, 64]
    assert abs(curve["rows"][-1]["gap"]) < abs(curve["rows"][0]["gap"])
    assert_outputs(tmp_path, "theorem1", ["theorem1_encoder.png"])


# ---------------------------------------------------------------------------- latent classes


def test_latent_classes_study_accuracy_follows_the_unsupervised_loss(tmp_path):
    results = run_latent_classes_study(
        tmp_path, num_classes=(4, 8), steps=120, eval_every=15, eval_triples=1000, labelled=400, progress=False
    )
    for setting in results["settings"]:
        assert setting["spearman_unsup_vs_accuracy"] < -0.5  # lower L_un, higher mean-classifier accuracy
        assert setting["spearman_unsup_vs_binary_loss"] > 0.5
        assert setting["bound_holds"]  # Arora et al.'s Lemma 4.3
        assert setting["records"][-1]["accuracy"] > setting["records"][0]["accuracy"]
    assert results["pooled"]["bound_vs_accuracy"] < 0
    assert_outputs(tmp_path, "latent-classes", ["latent_classes.png", "latent_classes.svg"])


# ---------------------------------------------------------------------------- temperature


def test_temperature_study_runs_and_resumes(tmp_path):
    options = dict(taus=(0.2, 0.5), epochs=1, batch_size=128, dim=32, linear_probe="none", progress=False)
    results = run_temperature_study(tmp_path, **options)
    assert [(r["loss"], r["tau"]) for r in results["rows"]] == [
        ("contrastive", 0.2),
        ("contrastive", 0.5),
        ("hard_contrastive", 0.2),
        ("hard_contrastive", 0.5),
    ]
    for row in results["rows"]:
        assert row["linear_acc"] is None and 0 < row["knn_acc"] <= 1
        assert row["neg_uniformity"] == pytest.approx(-row["uniformity"]) and row["neg_uniformity"] > 0
        assert -1 <= row["tolerance"] <= 1
    assert results["counts"]["trained"] == 4
    text = (tmp_path / "temperature.md").read_text()
    assert "W&L" in text and "83.27" not in text  # τ = 0.3 was not run: no published column for it
    assert_outputs(tmp_path, "temperature", ["temperature_curves.png", "temperature_curves.svg"])

    again = run_temperature_study(tmp_path, **options)  # finished runs are reused, not retrained
    assert again["counts"] == {"trained": 0, "resumed": 0, "reused": 4}
    assert [r["knn_acc"] for r in again["rows"]] == [r["knn_acc"] for r in results["rows"]]


def test_unknown_study_options_are_named():
    with pytest.raises(ValueError, match="unknown option.*stepz.*valid options: num_classes"):
        build_options(LatentClassesOptions, None, {"stepz": 3})
