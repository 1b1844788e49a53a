"""The studies end to end on tiny settings, and the numbers they rest on."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
import yaml

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
    terms = anchor_limit_terms(x, y, [0.3, 1.0])
    for tau in (0.3, 1.0):
        assert terms[tau].mean().item() == pytest.approx(asymptotic_contrastive_loss(x, y, tau).item(), abs=1e-10)


def test_gap_coefficients_match_their_definition():
    """c_i = e^{s_ii/τ}/μ_i − Var_j(e^{s_ij/τ})/(2μ_i²), written out on the full similarity matrix."""
    from aligniform.studies.theorem1 import anchor_statistics

    x, y = F.normalize(torch.randn(2, 200, 8, dtype=torch.float64), dim=-1)
    tau = 0.4
    stats = anchor_statistics(x, y, [tau])[tau]
    for row, (anchors, candidates) in enumerate(((x, y), (y, x))):
        similarity = anchors @ candidates.T
        off_diagonal = ~torch.eye(200, dtype=torch.bool)
        e = (similarity / tau).exp()[off_diagonal].reshape(200, 199)
        mu, variance = e.mean(1), e.var(1, unbiased=False)
        expected = similarity.diagonal().div(tau).exp() / mu - variance / (2 * mu**2)
        torch.testing.assert_close(stats["coefficient"][row], expected)
        torch.testing.assert_close(stats["limit"][row], mu.log() - similarity.diagonal() / tau)


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


@pytest.mark.slow
def test_theorem1_trains_its_encoder_once_and_reuses_it(tmp_path, capsys):
    """The fixed encoder goes through the studies' train-or-reuse: a second run reads it back, same numbers."""
    options = dict(encoder="train", encoder_epochs=1, dataset="digits", views_per_image=1, taus=(0.5,),
                   negatives=(1, 4, 8), population=64, repeats=2, threads=1)  # fmt: skip
    first = run_theorem1_study(tmp_path, **options)
    assert "theorem1_encoder: training" in capsys.readouterr().out
    assert (tmp_path / "theorem1_encoder" / "results.json").is_file()
    second = run_theorem1_study(tmp_path, **options)
    assert "theorem1_encoder: reusing finished run" in capsys.readouterr().out
    assert second["encoder"] == first["encoder"] and second["synthetic"] == first["synthetic"]


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


def _row(loss, tau, seed, neg_uniformity, tolerance, accuracy):
    return {
        "loss": loss,
        "tau": tau,
        "seed": seed,
        "accuracy": accuracy,
        "linear_acc": accuracy,
        "knn_acc": accuracy,
        "neg_uniformity": neg_uniformity,
        "tolerance": tolerance,
        "alignment": 0.5,
        "near_collapse": False,
    }


def test_temperature_claims_follow_the_preregistered_rules():
    from aligniform.studies.temperature import claims, summarize, trends

    taus = (0.07, 0.2, 0.3, 0.5, 0.7, 1.0)
    noise = {0: -0.01, 1: 0.0, 2: 0.01}
    rows = []
    for tau in taus:
        for seed, e in noise.items():
            # plain: uniformity falls and tolerance rises with τ, accuracy peaks at τ = 0.2
            rows.append(
                _row("contrastive", tau, seed, 3.5 - tau + e, 0.2 + 0.5 * tau + e, 0.95 - abs(tau - 0.2) / 10 + e / 10)
            )
            # hard: flat uniformity, clearly above the plain loss from τ = 0.5 on, except at τ = 1
            rows.append(_row("hard_contrastive", tau, seed, (3.5 if tau < 1 else 2.5) + e, 0.3 + e, 0.95 + e / 10))
    trend = trends(rows, resamples=2000)
    plain = trend["contrastive"]
    assert plain["uniformity"]["rho"] < -0.9 and plain["uniformity"]["high"] < 0
    assert plain["tolerance"]["low"] > 0 and plain["tolerance"]["rho_of_means"] == pytest.approx(1.0)
    verdicts = {c["claim"]: c for c in claims(rows, trend)}
    assert verdicts["uniformity falls as τ grows (contrastive)"]["verdict"] == "reproduces"
    assert verdicts["tolerance rises as τ grows (contrastive)"]["verdict"] == "reproduces"
    hard = verdicts["hard contrastive stays more uniform at large τ"]
    # τ = 0.5: 3.5 − 3.0 = 0.5, τ = 0.7: 3.5 − 2.8 = 0.7, τ = 1: 2.5 − 2.5 = 0 -> two of three: partly
    assert [round(g["difference"], 9) for g in hard["gaps"]] == [0.5, 0.7, 0.0] and hard["verdict"] == "partly"
    # seed sd 0.01 on both: standard error sqrt(2 · 0.01² / 3)
    assert hard["gaps"][0]["standard_error"] == pytest.approx(math.sqrt(2 * 0.01**2 / 3))
    best = verdicts["plain contrastive is most accurate at τ ≈ 0.2–0.3"]
    assert best["best_tau"] == 0.2 and best["verdict"] == "reproduces"
    # the summary is the plain mean and sample standard deviation over seeds
    entry = next(m for m in summarize(rows) if m["loss"] == "contrastive" and m["tau"] == 0.5)
    assert entry["neg_uniformity"] == pytest.approx(3.0) and entry["neg_uniformity_std"] == pytest.approx(0.01)

    # Rising uniformity (the opposite of W&L) is "not reproduced"; one seed gives no interval for the gap test.
    flipped = [dict(r, neg_uniformity=-r["neg_uniformity"]) for r in rows if r["seed"] == 1]
    flipped_claims = {c["claim"]: c["verdict"] for c in claims(flipped, trends(flipped, resamples=500))}
    assert flipped_claims["uniformity falls as τ grows (contrastive)"] == "not reproduced"
    assert flipped_claims["hard contrastive stays more uniform at large τ"] == "not evaluable"
    assert flipped_claims["plain contrastive is most accurate at τ ≈ 0.2–0.3"] == "not evaluable"


@pytest.mark.slow
def test_temperature_study_with_seeds_in_worker_processes(tmp_path):
    options = dict(
        taus=(0.2, 0.5),
        losses=("contrastive",),
        seeds=(0, 1),
        workers=2,
        epochs=1,
        batch_size=128,
        dim=16,
        dataset="digits",
        linear_probe="none",
        warmup_epochs=1,
        progress=False,
    )
    results = run_temperature_study(tmp_path, **options)
    assert [(r["tau"], r["seed"]) for r in results["rows"]] == [(0.2, 0), (0.2, 1), (0.5, 0), (0.5, 1)]
    assert results["counts"]["trained"] == 4
    assert (tmp_path / "temperature_runs" / "contrastive_tau0.5_seed1" / "results.json").is_file()
    saved = yaml.safe_load((tmp_path / "temperature_runs" / "contrastive_tau0.2_seed1" / "config.yaml").read_text())
    assert saved["seed"] == 1 and saved["warmup_epochs"] == 1
    assert [m["seeds"] for m in results["summary"]] == [2, 2]
    assert "±" in (tmp_path / "temperature.md").read_text()
    again = run_temperature_study(tmp_path, **options)
    assert again["counts"] == {"trained": 0, "resumed": 0, "reused": 4}


def test_unknown_study_options_are_named():
    with pytest.raises(ValueError, match="unknown option.*stepz.*valid options: num_classes"):
        build_options(LatentClassesOptions, None, {"stepz": 3})


# ---------------------------------------------------------------------------- options checked before `out`


@pytest.mark.parametrize(
    "run,overrides,message",
    [
        (run_theorem1_study, {"taus": (0.5, float("nan"))}, "`taus` must hold finite numbers"),
        (run_theorem1_study, {"view_noise": -0.1}, "`view_noise` must be >= 0"),
        (run_theorem1_study, {"encoder_objective": "nosuch(1)"}, "`encoder_objective`: "),
        (run_theorem1_study, {"dataset": "nosuch"}, "`dataset`: unknown dataset 'nosuch'"),
        (run_theorem1_study, {"taus": (0.0,)}, "`taus` must be positive temperatures"),
        (run_theorem1_study, {"negatives": (0, 4)}, "`negatives` must be numbers M >= 1"),
        (run_theorem1_study, {"repeats": 1}, "`repeats` must be >= 2"),
        (run_theorem1_study, {"population": 8}, r"`population` \(8\) must be at least four times"),
        (run_theorem1_study, {"encoder": "nosuch"}, "`encoder` must be one of train, random, none"),
        (run_temperature_study, {"lr": float("inf")}, "`lr` must be a finite number"),
        (run_temperature_study, {"model": "nosuch"}, "`model` must be one of"),
        (run_temperature_study, {"linear_probe": "long"}, "`linear_probe` must be one of short, paper, none"),
        (run_latent_classes_study, {"lr": -1.0}, "`lr` must be a positive number"),
        (run_latent_classes_study, {"within_class_spread": float("nan")}, "`within_class_spread` must be a finite"),
    ],
)
def test_the_library_refuses_a_bad_study_option_before_creating_out(tmp_path, run, overrides, message):
    from aligniform.errors import OptionError

    out = tmp_path / "out"
    with pytest.raises(OptionError, match=message) as raised:
        run(out, progress=False, **overrides)
    assert raised.value.options[0] == next(iter(overrides))
    assert not out.exists()


def test_validate_study_options_leaves_a_good_study_alone():
    from aligniform.studies import STUDIES
    from aligniform.studies.options import validate_study_options

    for _, options_class in STUDIES.values():
        defaults = options_class()
        assert validate_study_options(defaults) is defaults
