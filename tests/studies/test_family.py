"""The family study (issue 12): every new objective trains through the trainer; table, claims and map."""

import json

import pytest

from aligniform.objective import TERMS, Objective
from aligniform.plots import plot_family_map
from aligniform.studies import STUDIES
from aligniform.studies.family import (
    OBJECTIVES,
    FamilyOptions,
    claims,
    objective_spec,
    planned_runs,
    run_family_study,
    summarize,
)


def test_every_objective_parses_and_is_registered():
    assert STUDIES["family"][1] is FamilyOptions
    options = FamilyOptions()
    for name in OBJECTIVES:
        spec = objective_spec(name, options)
        assert str(Objective.parse(spec)) == str(Objective.parse(str(Objective.parse(spec))))
    assert Objective.parse(objective_spec("supervised_contrastive", options)).uses_labels
    assert {"nt_xent", "supervised_contrastive", "decoupled_contrastive", "debiased_contrastive", "sigmoid"} <= set(
        TERMS
    )


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"objectives": ("simclr",)}, "objectives must be some of"),
        ({"small_batch_objectives": ("nope",)}, "small_batch_objectives"),
        ({"objectives": ()}, "at least one"),
        ({"seeds": (0, 0)}, "distinct"),
        ({"tau": 0.0}, "tau"),
        ({"tau_plus": 1.0}, "tau_plus"),
        ({"hard_alpha": 1.5}, "hard_alpha"),
        ({"small_batch": 1}, "small_batch"),
    ],
)
def test_bad_options(overrides, message):
    with pytest.raises(ValueError, match=message):
        FamilyOptions(**overrides)


def test_plan_map_first_then_small_batch():
    options = FamilyOptions(objectives=("contrastive", "decoupled"), seeds=(0, 1), small_batch=16)
    assert planned_runs(options) == [
        ("contrastive", 256, 0),
        ("contrastive", 256, 1),
        ("decoupled", 256, 0),
        ("decoupled", 256, 1),
        ("nt_xent", 16, 0),
        ("nt_xent", 16, 1),
        ("decoupled", 16, 0),
        ("decoupled", 16, 1),
    ]
    assert planned_runs(FamilyOptions(objectives=("sigmoid",), small_batch=0)) == [("sigmoid", 256, 0)]


def _row(name, batch, seed, accuracy, tolerance):
    return {
        "objective": name,
        "batch_size": batch,
        "seed": seed,
        "alignment": 0.5,
        "uniformity": -3.0,
        "tolerance": tolerance,
        "linear_acc": accuracy,
        "knn_acc": accuracy,
        "mean_classifier_acc": accuracy,
        "accuracy": accuracy,
    }


def test_summary_and_claims_with_spread():
    rows = [
        _row("nt_xent", 256, 0, 0.97, 0.50),
        _row("nt_xent", 256, 1, 0.97, 0.52),
        _row("nt_xent", 32, 0, 0.90, 0.50),
        _row("nt_xent", 32, 1, 0.92, 0.50),
        _row("decoupled", 256, 0, 0.97, 0.50),
        _row("decoupled", 256, 1, 0.97, 0.50),
        _row("decoupled", 32, 0, 0.96, 0.50),
        _row("decoupled", 32, 1, 0.96, 0.50),
        _row("supervised_contrastive", 256, 0, 0.99, 0.90),
        _row("supervised_contrastive", 256, 1, 0.99, 0.91),
    ]
    summary = summarize(rows)
    small_nt = next(s for s in summary if s["objective"] == "nt_xent" and s["batch_size"] == 32)
    assert small_nt["accuracy"] == pytest.approx(0.91) and small_nt["accuracy_std"] == pytest.approx(0.0141421356)
    tests = claims(summary, FamilyOptions(seeds=(0, 1)))
    dcl = tests["dcl_small_batch"]
    assert dcl["nt_xent_drop"] == pytest.approx(0.06) and dcl["decoupled_drop"] == pytest.approx(0.01)
    assert dcl["held"] is True and dcl["verdict"] == "held"
    assert tests["supcon_tolerance_vs_nt_xent"]["held"] is True
    assert "supcon_tolerance_vs_contrastive" not in tests  # contrastive was not run: no claim
    # A margin inside two standard errors is reported as such, not as a finding.
    noisy = [dict(r) for r in rows]
    noisy[2]["accuracy"], noisy[3]["accuracy"] = 0.90, 1.0
    verdict = claims(summarize(noisy), FamilyOptions(seeds=(0, 1)))["dcl_small_batch"]["verdict"]
    assert verdict.startswith("within the seed spread")


def test_family_map_draws_means_with_spread(tmp_path):
    rows = [_row(n, 256, s, 0.9 + s / 100, 0.5) | {"alignment": 0.4 + s / 10} for n in OBJECTIVES for s in (0, 1)]
    rows[0]["supervised"] = True
    figure = plot_family_map(rows + [_row("decoupled", 32, 0, 0.8, 0.5)], tmp_path / "map")
    assert len(figure.axes) == 2 and "8 objectives" in figure.axes[0].get_title()
    assert (tmp_path / "map.png").is_file() and (tmp_path / "map.svg").is_file()
    with pytest.raises(ValueError, match="no record"):
        plot_family_map([{"objective": "x"}])


def test_family_study_runs_every_new_objective_and_reuses(tmp_path):
    objectives = ("nt_xent", "supervised_contrastive", "decoupled", "debiased", "sigmoid")
    options = dict(
        objectives=objectives,
        dataset="digits",
        epochs=1,
        batch_size=64,
        small_batch=32,
        dim=16,
        linear_probe="none",
        progress=False,
    )
    results = run_family_study(tmp_path, **options)
    assert [(r["objective"], r["batch_size"]) for r in results["rows"]] == [(o, 64) for o in objectives] + [
        ("nt_xent", 32),
        ("decoupled", 32),
    ]
    for row in results["rows"]:
        assert row["linear_acc"] is None and 0 < row["knn_acc"] <= 1 and 0 < row["mean_classifier_acc"] <= 1
        assert 0 <= row["alignment"] <= 4 and -4 <= row["uniformity"] <= 0 and -1 <= row["tolerance"] <= 1
        assert row["supervised"] == (row["objective"] == "supervised_contrastive")
    assert set(results["claims"]) == {"dcl_small_batch", "supcon_tolerance_vs_nt_xent"}
    assert results["counts"]["trained"] == 7
    text = (tmp_path / "family.md").read_text()
    assert "supervised_contrastive †" in text and "## Claims tested" in text
    json.loads((tmp_path / "family.json").read_text())  # strict JSON
    assert (tmp_path / "family_map.png").is_file() and (tmp_path / "family_map.svg").is_file()
    again = run_family_study(tmp_path, **options)
    assert again["counts"] == {"trained": 0, "resumed": 0, "reused": 7}
