"""The correlation study's analysis (docs/results/correlation_design.md) on tiny synthetic sweep rows: no training."""

import csv
import json
import math

import numpy as np
import pytest

from aligniform import stats
from aligniform.cli import main
from aligniform.configs import config_path
from aligniform.studies import correlation
from aligniform.studies.correlation import CorrelationOptions, run_correlation_study
from aligniform.studies.options import parse_study_options
from aligniform.sweep import ROLE_COLUMNS, SweepRunsFailed, load_grid

RESAMPLES = 200


def write_sweep(folder, rows):
    """A sweep folder as ``aligniform sweep`` leaves it: sweep.csv (and one folder per run)."""
    folder.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with (folder / "sweep.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        (folder / row["run"]).mkdir(exist_ok=True)
    return folder


def metric_rows(count=12, seed=0):
    """Encoders whose accuracy falls with both metrics (plus a little noise): the paper's claim holds."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        alignment = 0.3 + 0.6 * rng.random()
        uniformity = -3.6 + (alignment - 0.3) + 0.4 * rng.random()  # no strict trade-off between the two
        accuracy = 0.99 - 0.05 * (alignment - 0.3) - 0.04 * (uniformity + 3.6) + 0.002 * rng.standard_normal()
        rows.append(
            {
                "run": f"run{index:03d}-x",
                "dataset": "mnist5k",
                "objective": f"contrastive(tau={0.1 + index / 10:g})",
                "batch_size": 256,
                "dim": 128,
                "epochs": 10,
                "lr": 0.12,
                "alignment": alignment,
                "uniformity": uniformity,
                "tolerance": 0.5,
                "effective_rank": 40.0,
                "knn_acc": accuracy,
                "linear_acc": accuracy - 0.01,
                "mean_classifier_acc": accuracy - 0.02,
                "wall_seconds": 30.0,
            }
        )
    return rows


def seed_rows(accuracies=(0.953, 0.955, 0.951)):
    return [
        {"run": f"seed{index}", "dataset": "mnist5k", "seed": index, "alignment": 0.47, "uniformity": -3.49,
         "knn_acc": accuracy, "linear_acc": 0.93}
        for index, accuracy in enumerate(accuracies)
    ]  # fmt: skip


def figure5_rows(grid="sweeps/figure5_mnist5k", roles=False):
    """Every run of the design's grid with synthetic results shaped like the paper's ablation.

    With ``roles`` the rows carry the grid's roles as ``aligniform sweep`` writes them (``role``, ``role_value``);
    without, they are rows of a sweep.csv written before grids had roles.
    """
    rows = []
    for index, run in enumerate(load_grid(config_path(grid))):
        options = run.options
        role = correlation.objective_role(options["objective"])
        at_base = all(key not in options or options[key] == base for key, base in
                      {"batch_size": 256, "dim": 128, "epochs": 10, "lr": 0.12}.items())  # fmt: skip
        alignment, uniformity, accuracy = 0.6 + 0.005 * index, -3.3 + 0.01 * index, 0.93 - 0.001 * index
        if role and at_base and role[0] == "align alone":
            alignment, uniformity, accuracy = 0.01, -0.02, 0.21
        elif role and at_base and role[0] == "uniform alone":
            alignment, uniformity, accuracy = 1.3, -3.8, 0.80
        elif role and at_base and role[0] == "ratio":
            w = role[1]
            alignment, uniformity = 0.6 / (1 + w), -3.6 + 0.05 * w
            accuracy = 0.955 - 0.001 * w if w <= 4 else (0.30 if w == 16 else 0.90)
            if w == 16:
                uniformity = -0.01
        recorded = dict(zip(ROLE_COLUMNS, run.role or ("", ""))) if roles else {}
        rows.append(
            {"run": run.name, "dataset": options.get("dataset"), **options, **recorded, "alignment": alignment,
             "uniformity": uniformity, "knn_acc": accuracy, "linear_acc": accuracy - 0.01, "wall_seconds": 60.0}
        )  # fmt: skip
    return rows


def read_json(path):
    return json.loads(path.read_text())  # strict JSON: no NaN


# ----------------------------------------------------------------------------- statistics


def test_correlations_bootstrap_and_regression_follow_the_design(tmp_path):
    rows = metric_rows()
    write_sweep(tmp_path, rows)
    results = run_correlation_study(tmp_path, reuse=True, resamples=RESAMPLES)
    alignment = [row["alignment"] for row in rows]
    uniformity = [row["uniformity"] for row in rows]
    knn = [100 * row["knn_acc"] for row in rows]
    entry = results["correlations"]["alignment~knn_acc"]
    expected = stats.bootstrap_rank_correlation(alignment, knn, "kendall", resamples=RESAMPLES, seed=0)
    assert entry["kendall"] == pytest.approx(expected.estimate)
    assert (entry["kendall_low"], entry["kendall_high"]) == pytest.approx((expected.low, expected.high))
    assert entry["spearman"] == pytest.approx(stats.spearman(alignment, knn)) and entry["n"] == 12
    assert entry["spearman_high"] < 0 and entry["verdict"] == "reproduces"
    fit = stats.standardized_regression(knn, [alignment, uniformity], resamples=RESAMPLES, seed=0)
    regression = results["regressions"]["knn_acc"]
    assert regression["beta_alignment"] == pytest.approx(fit.coefficients[0])
    assert (regression["beta_uniformity_low"], regression["beta_uniformity_high"]) == pytest.approx(fit.intervals[1])
    assert regression["verdict"] == "reproduces" and results["verdict"]["both_low_is_best"]["verdict"] == "reproduces"
    assert results["verdict"]["uniformity"]["verdict"] == "reproduces"
    assert results["tradeoff"]["spearman"] == pytest.approx(stats.spearman(alignment, uniformity))
    # secondary accuracies get the same analysis; backbone ones are absent without eval_backbone.json
    assert {"linear_acc", "mean_classifier_acc"} <= set(results["regressions"])
    assert "backbone_knn_acc" not in results["regressions"]
    # outputs: strict JSON, the report's sections, the Figure 5 layout and the per-metric scatter per accuracy
    assert read_json(tmp_path / "correlation.json")["verdict"]["alignment"]["verdict"] == "reproduces"
    text = (tmp_path / "correlation.md").read_text()
    for heading in ("## Verdict", "## Seed spread", "## Statistics, all encoders", "without the collapsed",
                    "## Collapsed encoders", "## Ablation predictions", "## Encoders"):  # fmt: skip
        assert heading in text, heading
    for stem in ("correlation_knn_acc", "scatter_knn_acc", "correlation_linear_acc", "scatter_mean_classifier_acc"):
        assert (tmp_path / f"{stem}.png").is_file() and (tmp_path / f"{stem}.svg").is_file()


def test_the_analysis_is_deterministic_given_the_seed(tmp_path):
    write_sweep(tmp_path, metric_rows(seed=4))
    first = run_correlation_study(tmp_path, reuse=True, resamples=RESAMPLES, seed=3)
    second = run_correlation_study(tmp_path, reuse=True, resamples=RESAMPLES, seed=3)
    other = run_correlation_study(tmp_path, reuse=True, resamples=RESAMPLES, seed=4)
    key = "uniformity~linear_acc"
    assert first["correlations"] == second["correlations"] and first["regressions"] == second["regressions"]
    assert first["correlations"][key]["spearman"] == other["correlations"][key]["spearman"]
    assert first["correlations"][key]["spearman_low"] != other["correlations"][key]["spearman_low"]


def test_decision_rules():
    assert correlation.interval_verdict(-0.5, -0.01) == "reproduces"
    assert correlation.interval_verdict(0.01, 0.5) == "contradicted"
    assert correlation.interval_verdict(-0.5, 0.0) == "not shown"  # an interval touching 0 does not lie below it
    assert correlation.interval_verdict(math.nan, math.nan) == "not shown"
    assert correlation.regression_verdict((-3, -1), (-2, -0.5)) == "reproduces"
    assert correlation.regression_verdict((-3, 1), (-2, -0.5)) == "partly"
    assert correlation.regression_verdict((-3, 1), (0.2, 0.5)) == "not shown"


# ----------------------------------------------------------------------------- collapsed encoders


def test_collapsed_encoders_stay_in_and_are_also_reported_separately(tmp_path):
    rows = metric_rows()
    rows[0].update(uniformity=-0.06, knn_acc=0.3)  # the old sweep's 8·align encoder
    rows[1].update(uniformity=-0.5)  # on the threshold: not collapsed (L_uniform > -0.5 is)
    write_sweep(tmp_path, rows)
    results = run_correlation_study(tmp_path, reuse=True, resamples=RESAMPLES)
    assert results["collapsed"] == [rows[0]["run"]]
    assert results["correlations"]["uniformity~knn_acc"]["n"] == 12
    assert results["without_collapsed"]["runs"] == 11
    assert results["without_collapsed"]["correlations"]["uniformity~knn_acc"]["n"] == 11
    kept = rows[1:]
    assert results["without_collapsed"]["correlations"]["alignment~knn_acc"]["spearman"] == pytest.approx(
        stats.spearman([r["alignment"] for r in kept], [r["knn_acc"] for r in kept])
    )
    flags = {row["run"]: row["collapsed"] for row in results["encoders"]}
    assert flags[rows[0]["run"]] is True and flags[rows[1]["run"]] is False
    text = (tmp_path / "correlation.md").read_text()
    assert "## Collapsed encoders (L_uniform > -0.5): 1" in text
    # a stricter threshold (an option) flags more
    stricter = run_correlation_study(tmp_path, reuse=True, resamples=RESAMPLES, collapse_threshold=-0.51)
    assert len(stricter["collapsed"]) == 2


def test_the_figure5_layout_rings_collapsed_encoders(tmp_path):
    rows = metric_rows()
    rows[0]["uniformity"] = -0.06
    write_sweep(tmp_path, rows)
    run_correlation_study(tmp_path, reuse=True, resamples=RESAMPLES)
    svg = (tmp_path / "correlation_knn_acc.svg").read_text()
    assert "collapsed (1)" in svg
    assert "95 % CI" in (tmp_path / "scatter_knn_acc.svg").read_text()


# ----------------------------------------------------------------------------- seed spread, backbone, runs


def test_seed_spread_precondition_and_backbone_accuracies(tmp_path):
    rows = metric_rows()
    sweep = write_sweep(tmp_path / "grid", rows)
    seeds = write_sweep(tmp_path / "seeds", seed_rows())
    for row in rows[:5]:
        (sweep / row["run"] / "eval_backbone.json").write_text(
            json.dumps({"eval_layer": "backbone", "linear_acc": 0.96, "knn_acc": row["knn_acc"] + 0.01})
        )
    results = run_correlation_study(sweep, reuse=True, resamples=RESAMPLES, seeds=str(seeds))
    assert results["seed_spread"]["sd"]["knn_acc"] == pytest.approx(0.2)  # 95.3, 95.5, 95.1 as in the design
    condition = results["precondition"]
    spread = np.std([100 * row["knn_acc"] for row in rows], ddof=1)
    assert condition["encoder_sd"] == pytest.approx(spread) and condition["ratio"] == pytest.approx(spread / 0.2)
    assert condition["result"] == ("holds" if spread / 0.2 >= 3 else "fails")
    assert results["backbone_evaluations"] == 5
    assert results["correlations"]["alignment~backbone_knn_acc"]["n"] == 5
    assert (sweep / "scatter_backbone_knn_acc.png").is_file()
    # a flat sweep fails the precondition
    flat = [dict(row, knn_acc=0.95 + 0.0001 * index) for index, row in enumerate(rows)]
    write_sweep(tmp_path / "flat", flat)
    flat_results = run_correlation_study(tmp_path / "flat", reuse=True, resamples=RESAMPLES, seeds=str(seeds))
    assert flat_results["precondition"]["result"] == "fails"
    # no seed sweep: not evaluable, and said so
    assert run_correlation_study(sweep, reuse=True, resamples=RESAMPLES)["precondition"]["result"] == "not evaluable"
    assert "No seed sweep given" in (sweep / "correlation.md").read_text()


def test_a_wrong_seed_folder_fails_before_any_training(tmp_path, monkeypatch):
    monkeypatch.setattr("aligniform.sweep.run_sweep", lambda *args, **kwargs: pytest.fail("trained"))
    with pytest.raises(ValueError, match="seeds: .*has no sweep.csv"):
        run_correlation_study(tmp_path / "out", seeds=str(tmp_path / "nowhere"))


def test_failed_runs_are_listed_and_the_analysis_is_still_written(tmp_path, monkeypatch):
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "base: {dataset: digits, epochs: 1}\n"
        "runs:\n" + "".join(f"  - {{objective: 'contrastive(tau={tau})'}}\n" for tau in (0.1, 0.2, 0.3, 0.4, 0.5))
    )
    runs = load_grid(grid)
    rows = metric_rows(4)
    for run, row in zip(runs, rows):
        row["run"] = run.name

    def fake_sweep(grid_file, out, workers=1, max_runs=None):
        write_sweep(out, rows)
        raise SweepRunsFailed("1 of 5 run(s) failed: " + runs[4].name, [runs[4].name])

    monkeypatch.setattr("aligniform.sweep.run_sweep", fake_sweep)
    out = tmp_path / "out"
    with pytest.raises(SweepRunsFailed, match="analysis of the 4 finished runs was written"):
        run_correlation_study(out, grid=str(grid), resamples=RESAMPLES)
    results = read_json(out / "correlation.json")
    assert results["failed"] == [runs[4].name] and [entry["run"] for entry in results["unfinished"]] == [runs[4].name]
    assert results["runs"] == 4
    assert f"* {runs[4].name}: contrastive(tau=0.5)" in (out / "correlation.md").read_text()


# ----------------------------------------------------------------------------- ablation (design section 4)


def test_ablation_predictions_on_the_design_grid(tmp_path):
    rows = figure5_rows()
    assert len(rows) == 44
    write_sweep(tmp_path / "grid", rows)
    seeds = write_sweep(tmp_path / "seeds", seed_rows())
    results = run_correlation_study(
        tmp_path / "grid", reuse=True, grid="sweeps/figure5_mnist5k", resamples=RESAMPLES, seeds=str(seeds)
    )
    assert results["unfinished"] == [] and results["dataset"] == "mnist5k"
    ablation = results["ablation"]
    assert ablation["base_settings"] == {"batch_size": 256, "dim": 128, "epochs": 10, "lr": 0.12}
    keys = ("alignment_alone_collapses", "uniformity_alone_lacks_invariance", "moderate_ratios_work")
    first, second, third = (ablation[key] for key in keys)
    assert first["result"] == "holds" and set(first["encoders"]) == {"align(alpha=2)", "align(alpha=1)"}
    assert second["result"] == "holds"
    assert sorted(second["moderate_ratios"]) == sorted(correlation.MODERATE_RATIOS)
    assert second["max_moderate_alignment"] == pytest.approx(0.6 / 1.25)  # w = 0.25
    assert second["accuracy_below_median"] == pytest.approx(
        95.5 - 0.1 * np.median([0.25, 0.5, 0.98 / 0.96, 1, 2, 4]) - 80
    )
    assert third["result"] == "holds" and third["margin"] == pytest.approx(1.0)  # max(1, 3 · 0.2)
    assert [entry["w"] for entry in third["encoders"]][-2:] == [8.0, 16.0]
    assert third["ratio_uniformity_spearman"]["n"] == 8 and third["ratio_uniformity_spearman"]["spearman"] == 1.0
    assert (
        "| 1. alignment alone collapses (L_uniform > -0.5) | holds |"
        in (tmp_path / "grid" / "correlation.md").read_text()
    )


def test_ablation_predictions_fail_and_are_not_evaluable_by_the_rules():
    rows = figure5_rows()
    correlation.flag_collapsed(rows)
    by_objective = {(row["objective"], row.get("batch_size"), row.get("dim"), row.get("epochs"), row.get("lr")): row
                    for row in rows}  # fmt: skip

    def row_of(objective):
        return by_objective[(objective, 256, 128, 10, 0.12)]

    row_of("align(alpha=1)").update(uniformity=-2.0, collapsed=False)  # alignment alone did not collapse
    row_of("8*align(alpha=2) + uniform(t=2)")["knn_acc"] = 0.9545  # a large ratio that still works
    ablation = correlation.ablation_predictions(rows, seed_sd=0.2)
    assert ablation["alignment_alone_collapses"]["result"] == "fails"
    assert ablation["moderate_ratios_work"]["result"] == "fails"
    # a moderate encoder that collapsed fails prediction 3 even without s
    row_of("2*align(alpha=2) + uniform(t=2)")["collapsed"] = True
    assert correlation.ablation_predictions(rows, seed_sd=None)["moderate_ratios_work"]["result"] == "fails"

    rows = figure5_rows()
    correlation.flag_collapsed(rows)
    # without s, the accuracy margins are unknown: not evaluable (nothing fails)
    unknown = correlation.ablation_predictions(rows, seed_sd=None)
    assert unknown["uniformity_alone_lacks_invariance"]["result"] == "not evaluable"
    assert unknown["uniformity_alone_lacks_invariance"]["higher_alignment"] is True
    assert unknown["alignment_alone_collapses"]["result"] == "holds"
    # a pre-stated encoder that did not finish: not evaluable, the missing ratio named
    missing = [row for row in rows if row["objective"] != "4*align(alpha=2) + uniform(t=2)"]
    partial = correlation.ablation_predictions(missing, seed_sd=0.2)
    assert partial["moderate_ratios_work"]["result"] == "not evaluable"
    assert partial["moderate_ratios_work"]["missing_ratios"] == [4.0]
    # uniformity alone aligned better than a moderate encoder: fails
    for row in rows:
        if row["objective"] == "uniform(t=2)":
            row["alignment"] = 0.1
    assert correlation.ablation_predictions(rows, 0.2)["uniformity_alone_lacks_invariance"]["result"] == "fails"


def test_encoder_roles_and_base_settings():
    assert correlation.encoder_role({"objective": "0.98*align(alpha=2) + 0.96*uniform(t=2)"}) == (
        "ratio",
        pytest.approx(0.98 / 0.96),
    )
    assert correlation.encoder_role({"objective": "uniform(t=2)"}) == ("uniform alone", 2.0)
    assert correlation.encoder_role({"objective": "align(alpha=1) + uniform(t=2)"}) is None  # α = 1: not the family
    assert correlation.encoder_role({"objective": "3*align(alpha=2) + uniform(t=3)"}) is None
    assert correlation.encoder_role({"objective": ""}) is None
    rows = figure5_rows("sweeps/figure5_digits")
    assert correlation.base_settings(rows) == {"batch_size": 256, "dim": 128, "epochs": 30, "lr": 0.12}


@pytest.mark.parametrize(
    "name", sorted(path.stem for path in config_path("sweeps/figure5_mnist5k").parent.glob("*.yaml"))
)
def test_each_shipped_grid_gives_the_role_its_objective_names(name):
    """The roles a grid records are exactly those parsed from the objectives of rows written before roles."""
    for run in load_grid(config_path(f"sweeps/{name}")):
        assert run.role == correlation.objective_role(run.options.get("objective")), run.name


def test_the_ablation_reads_each_rows_recorded_role():
    old, new = figure5_rows(), figure5_rows(roles=True)
    for rows in (old, new):
        correlation.flag_collapsed(rows)
    assert all("role" not in row for row in old) and any(row["role"] == "uniform alone" for row in new)
    assert correlation.ablation_predictions(new, 0.2) == correlation.ablation_predictions(old, 0.2)
    # the recorded role is what counts: a run the grid gives no role takes no part, whatever its objective
    for row in new:
        if row["objective"] == "uniform(t=2)":
            row.update(role="", role_value="")
    assert correlation.encoder_role(next(row for row in new if row["objective"] == "uniform(t=2)")) is None
    second = correlation.ablation_predictions(new, 0.2)["uniformity_alone_lacks_invariance"]
    assert second["result"] == "not evaluable"
    with pytest.raises(ValueError, match="has the role 'ratio' without a number"):
        correlation.encoder_role({"run": "r1", "role": "ratio", "role_value": ""})


# ----------------------------------------------------------------------------- options and the command line


def test_the_design_commands_parse(tmp_path):
    overrides = parse_study_options(
        CorrelationOptions, ["grid=sweeps/figure5_mnist5k", "workers=2", "seeds=runs/figure5/seeds_mnist5k"]
    )
    assert overrides == {"grid": "sweeps/figure5_mnist5k", "workers": 2, "seeds": "runs/figure5/seeds_mnist5k"}
    assert correlation.grid_file(overrides["grid"]) == config_path("sweeps/figure5_mnist5k")
    defaults = CorrelationOptions()
    assert (defaults.resamples, defaults.seed, defaults.collapse_threshold) == (10_000, 0, -0.5)
    with pytest.raises(ValueError, match="`resamples` must be a positive integer"):
        CorrelationOptions(resamples=0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        CorrelationOptions(seed=-1)


def test_the_study_command_reads_a_finished_sweep(tmp_path, capsys):
    sweep = write_sweep(tmp_path / "grid", metric_rows())
    seeds = write_sweep(tmp_path / "seeds", seed_rows())
    argv = ["study", "correlation", "--out", str(sweep), "--set", "reuse=true", "--set", f"seeds={seeds}"]
    assert main([*argv, "--set", f"resamples={RESAMPLES}"]) == 0
    assert "## Verdict (primary accuracy, all encoders)" in capsys.readouterr().out
    assert main([*argv, "--set", "resamples=0"]) == 2
    assert "resamples must be a positive integer" in capsys.readouterr().err
