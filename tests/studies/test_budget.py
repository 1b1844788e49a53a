"""The budget study (docs/results/budget_design.md): its rules on hand-made numbers, written before any run was
read, and the whole study plus its summary rows on hand-made run folders."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from aligniform.studies import budget_rules as rules
from aligniform.studies.budget import BudgetInputError, run_budget_study
from aligniform.studies.summary import BEGIN, END, run_summary_study
from aligniform.studies.summary_table import read_table_rows
from aligniform.studies.temperature_claims import claims as temperature_claims
from aligniform.studies.temperature_claims import summarize as temperature_summary

# ----------------------------------------------------------------------------- section 1: the outcomes


@pytest.mark.parametrize(
    ("today", "longer", "expected"),
    [
        ("not reproduced", "reproduced", "reproduced at the longer budget"),
        ("partly", "reproduced", "reproduced at the longer budget"),
        ("reproduced", "reproduced", "reproduced at both budgets"),
        ("not reproduced", "not reproduced", "not reproduced at either"),
        ("partly", "partly", "partly at both budgets"),
        ("not evaluable", "reproduced", "not evaluable (today: not evaluable, 3×: reproduced)"),
        ("reproduced", "not evaluable", "not evaluable (today: reproduced, 3×: not evaluable)"),
        ("not reproduced", "partly", "budget-dependent (today: not reproduced, 3×: partly)"),
        ("reproduced", "partly", "budget-dependent (today: reproduced, 3×: partly)"),
        ("partly", "not reproduced", "budget-dependent (today: partly, 3×: not reproduced)"),
    ],
)
def test_outcome_follows_the_design_table(today: str, longer: str, expected: str) -> None:
    assert rules.outcome(today, longer) == expected


# ----------------------------------------------------------------------------- section 4, A: the weight ratio


def _seeds(accuracy: float, uniformity: float, spread: float = 0.3) -> dict:
    return {"accuracy": [accuracy - spread, accuracy, accuracy + spread], "uniformity": [uniformity] * 3}


def _grid(**changes: dict) -> dict:
    grid = {0.25: _seeds(97.0, -3.8), 1.0: _seeds(96.6, -3.6), 4.0: _seeds(96.2, -3.1), 8.0: _seeds(75.0, -0.2)}
    grid.update({float(key.replace("w", "").replace("_", ".")): value for key, value in changes.items()})
    return grid


def test_ratio_rule_holds_when_moderate_ratios_are_close_and_large_ones_fall() -> None:
    result = rules.ratio_verdict(_grid(), resamples=500)
    assert result["verdict"] == "holds"
    assert result["s"] == pytest.approx(0.3) and result["margin"] == pytest.approx(1.0)  # max(1, 3 × 0.3)
    assert result["best_moderate"] == pytest.approx(97.0)
    assert [entry["below_best"] for entry in result["ratios"]] == pytest.approx([0.0, 0.4, 0.8, 22.0])
    assert result["shortfall"]["points"] == pytest.approx(0.8)
    assert result["shortfall"]["standard_error"] == pytest.approx(math.sqrt(2 * 0.09 / 3))
    assert result["shortfall"]["low"] <= 0.8 <= result["shortfall"]["high"]
    assert result["ratio_uniformity_spearman"]["spearman"] == pytest.approx(1.0)


def test_ratio_rule_fails_when_w4_falls_beyond_the_margin() -> None:
    result = rules.ratio_verdict(_grid(w4=_seeds(90.0, -2.0)), resamples=200)
    assert result["verdict"] == "fails"
    assert [entry["as_predicted"] for entry in result["ratios"]] == [True, True, False, True]


def test_ratio_rule_margin_grows_with_the_seed_spread_of_w1() -> None:
    # s = 1.0 -> margin 3: w = 4 at 2.5 points below is within it
    result = rules.ratio_verdict(_grid(w1=_seeds(96.6, -3.6, spread=1.0), w4=_seeds(94.5, -3.0)), resamples=200)
    assert result["margin"] == pytest.approx(3.0) and result["verdict"] == "holds"


def test_ratio_rule_fails_when_a_large_ratio_neither_collapses_nor_falls() -> None:
    assert rules.ratio_verdict(_grid(w8=_seeds(96.5, -3.0)), resamples=200)["verdict"] == "fails"
    # collapsed by mean L_uniform although accurate: as predicted
    assert rules.ratio_verdict(_grid(w8=_seeds(96.5, -0.4)), resamples=200)["verdict"] == "holds"


def test_ratio_rule_fails_when_a_moderate_ratio_collapses() -> None:
    assert rules.ratio_verdict(_grid(w4=_seeds(96.5, -0.3)), resamples=200)["verdict"] == "fails"


def test_ratio_rule_is_not_evaluable_with_fewer_than_two_seeds() -> None:
    grid = _grid(w8={"accuracy": [75.0], "uniformity": [-0.2]})
    assert rules.ratio_verdict(grid, resamples=200)["verdict"] == "not evaluable"
    assert rules.ratio_verdict({1.0: _seeds(96.0, -3.0)}, resamples=200)["verdict"] == "not evaluable"


# ----------------------------------------------------------------------------- B and C


def test_debiased_rule_by_two_standard_errors() -> None:
    clear = rules.debiased_verdict([96.0, 96.5, 97.0], [95.0, 95.2, 95.4], resamples=500)
    assert clear["verdict"] == "reproduced" and clear["difference"] == pytest.approx(1.3)
    assert clear["standard_error"] == pytest.approx(math.sqrt(0.25 / 3 + 0.04 / 3))
    assert rules.debiased_verdict([95.3, 95.9, 96.3], [95.2, 95.5, 95.8], resamples=200)["verdict"] == "partly"
    assert rules.debiased_verdict([95.0, 95.6, 96.3], [96.0, 96.4, 96.7], resamples=200)["verdict"] == "not reproduced"
    assert rules.debiased_verdict([96.0], [95.0], resamples=200)["verdict"] == "not evaluable"


def _temperature_rows(epochs: int, accuracy: dict[float, float]) -> list[dict]:
    return [
        {"loss": "contrastive", "tau": tau, "seed": seed, "accuracy": value + 0.002 * (seed - 1)}
        | {"near_collapse": False}
        for tau, value in accuracy.items()
        for seed in range(3)
    ]


def test_temperature_direction_compares_best_claimed_with_best_low_tau() -> None:
    rows = _temperature_rows(10, {0.07: 0.970, 0.1: 0.972, 0.2: 0.975, 0.3: 0.974, 1.0: 0.960})
    direction = rules.temperature_direction(temperature_summary(rows))
    assert direction["points"] == pytest.approx(0.3) and (direction["claimed_tau"], direction["low_tau"]) == (0.2, 0.1)
    assert direction["standard_error"] == pytest.approx(100 * math.sqrt(2 * 0.002**2 / 3))


# ----------------------------------------------------------------------------- the study on hand-made folders


def _write_sweep(folder: Path, rows: list[dict]) -> None:
    folder.mkdir(parents=True)
    with (folder / "sweep.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _ratio_sweep(
    folder: Path, dataset: str, budgets: dict[int, dict[float, tuple[float, float]]], roles: bool = False
) -> None:
    """A weight-ratio sweep.csv; with ``roles`` each row carries its role as a grid with roles makes it write."""
    rows = []
    for epochs, by_ratio in budgets.items():
        for w, (accuracy, uniformity) in by_ratio.items():
            for seed in range(3):
                objective = f"{w:g}*align(alpha=2) + uniform(t=2)" if w != 1 else "align(alpha=2) + uniform(t=2)"
                knn = (accuracy + 0.2 * (seed - 1)) / 100
                rows.append(
                    {
                        "run": f"r{len(rows)}",
                        "dataset": dataset,
                        "objective": objective,
                        "epochs": epochs,
                        "seed": seed,
                        **({"role": "ratio", "role_value": w} if roles else {}),
                        "knn_acc": knn,
                        "linear_acc": knn,
                        "uniformity": uniformity,
                    }
                )
    _write_sweep(folder, rows)


def _temperature_study(folder: Path, epochs: int, accuracy: dict[float, float]) -> None:
    rows = _temperature_rows(epochs, accuracy)
    folder.mkdir(parents=True)
    results = {
        "options": {"epochs": epochs, "seeds": [0, 1, 2], "dataset": "mnist5k"},
        "summary": temperature_summary(rows),
        "claims": temperature_claims(rows, {}),
    }
    (folder / "temperature.json").write_text(json.dumps(results))


FAILING = {0.25: (97.0, -3.8), 1.0: (96.5, -3.6), 4.0: (80.0, -1.0), 8.0: (75.0, -0.2)}
HOLDING = {0.25: (97.5, -3.8), 1.0: (97.3, -3.6), 4.0: (97.0, -3.0), 8.0: (80.0, -0.2)}


@pytest.fixture
def design_folders(tmp_path: Path) -> dict:
    _ratio_sweep(tmp_path / "ratio_mnist5k", "mnist5k", {10: FAILING, 30: HOLDING})
    _ratio_sweep(tmp_path / "ratio_digits", "digits", {30: HOLDING, 90: HOLDING})
    _temperature_study(tmp_path / "t10", 10, {0.07: 0.970, 0.1: 0.972, 0.2: 0.970, 0.3: 0.969, 1.0: 0.960})
    _temperature_study(tmp_path / "t30", 30, {0.07: 0.970, 0.1: 0.972, 0.2: 0.976, 0.3: 0.974, 1.0: 0.960})
    rows = []
    for epochs, (debiased, nt) in {5: (95.6, 96.4), 15: (96.4, 96.5)}.items():
        for name, value in (("debiased_contrastive(tau=0.2, tau_plus=0.1)", debiased), ("nt_xent(tau=0.2)", nt)):
            for seed in range(3):
                accuracy = (value + 0.3 * (seed - 1)) / 100
                rows.append(
                    {
                        "run": f"r{len(rows)}",
                        "objective": name,
                        "epochs": epochs,
                        "seed": seed,
                        "linear_acc": accuracy,
                        "knn_acc": accuracy,
                    }
                )
    _write_sweep(tmp_path / "debiased", rows)
    return {
        "ratio": (str(tmp_path / "ratio_mnist5k"), str(tmp_path / "ratio_digits")),
        "temperature": (str(tmp_path / "t30"), str(tmp_path / "t10")),
        "debiased": str(tmp_path / "debiased"),
    }


def test_budget_study_names_each_claims_outcome(tmp_path: Path, design_folders: dict) -> None:
    results = run_budget_study(tmp_path / "out", resamples=200, progress=False, **design_folders)
    claims = results["claims"]
    assert claims["ratio"]["verdicts"] == ["partly", "reproduced"]  # mnist5k fails at 10 ep, digits holds
    assert claims["ratio"]["outcome"] == "reproduced at the longer budget"
    assert [d["dataset"] for d in claims["ratio"]["datasets"]] == ["mnist5k", "digits"]
    assert claims["ratio"]["datasets"][0]["shortfall_change"] == pytest.approx(0.5 - 17.0)
    assert claims["temperature"]["verdicts"] == ["not reproduced", "reproduced"]  # sorted by epochs, not given order
    assert claims["temperature"]["outcome"] == "reproduced at the longer budget"
    assert claims["debiased"]["verdicts"] == ["not reproduced", "not reproduced"]
    assert claims["debiased"]["outcome"] == "not reproduced at either"
    assert claims["debiased"]["difference_change"] == pytest.approx(0.8 - 0.1)
    saved = json.loads((tmp_path / "out" / "budget.json").read_text())
    assert saved["claims"]["debiased"]["outcome"] == "not reproduced at either"
    report = (tmp_path / "out" / "budget.md").read_text()
    assert "**Outcome: reproduced at the longer budget**" in report and "| 10 | 4 | 3 |" in report


def test_budget_study_reads_recorded_roles_and_falls_back_to_the_objective(tmp_path: Path) -> None:
    """Sweeps written before grids had roles (no role column) and with them give the same report."""
    _ratio_sweep(tmp_path / "old", "mnist5k", {10: FAILING, 30: HOLDING})
    _ratio_sweep(tmp_path / "new", "mnist5k", {10: FAILING, 30: HOLDING}, roles=True)
    _ratio_sweep(tmp_path / "parsed", "mnist5k", {10: FAILING, 30: HOLDING})
    # a run the grid gave no role takes no part, whatever its objective says (without the column it would)
    extra = ["extra", "mnist5k", "align(alpha=2) + uniform(t=2)", 10, 3]
    for name, row in (("new", [*extra, "", "", 0.1, 0.1, 0.0]), ("parsed", [*extra, 0.1, 0.1, 0.0])):
        with (tmp_path / name / "sweep.csv").open("a", newline="") as handle:
            csv.writer(handle).writerow(row)
    reports = []
    for name in ("old", "new", "parsed"):
        run_budget_study(tmp_path / f"out_{name}", ratio=(str(tmp_path / name),), resamples=200, progress=False)
        reports.append((tmp_path / f"out_{name}" / "budget.md").read_text().replace(str(tmp_path / name), "SWEEP"))
    assert reports[0] == reports[1]
    assert reports[2] != reports[0]


def test_budget_study_refuses_a_folder_without_two_budgets(tmp_path: Path) -> None:
    _ratio_sweep(tmp_path / "one", "digits", {30: HOLDING})
    with pytest.raises(BudgetInputError, match=r"one/sweep.csv holds the epoch counts \[30\]"):
        run_budget_study(tmp_path / "out", ratio=(str(tmp_path / "one"),), progress=False)
    with pytest.raises(BudgetInputError, match="missing/sweep.csv does not exist"):
        run_budget_study(tmp_path / "out", debiased=str(tmp_path / "missing"), progress=False)
    assert not (tmp_path / "out").exists()


def test_summary_places_budget_rows_below_their_claims_and_keeps_other_rows(
    tmp_path: Path, design_folders: dict
) -> None:
    run_budget_study(tmp_path / "budget", resamples=200, progress=False, **design_folders)
    kept = "| lower alignment ↔ higher accuracy | W&I Fig. 5 | ρ = +0.60 | **not reproduced** |"
    original = [
        "| claim | paper | here | verdict |",
        "|---|---|---|---|",
        "| align + uniform works at moderate weight ratios (w ≤ 4), not at 8–16 | W&I Sec. 5 | fails | "
        "**not reproduced** |",
        kept,
        "| debiased contrastive beats SimCLR (NT-Xent) | Chuang et al. 2020 | 95.65 vs 96.35 | **not reproduced** |",
    ]
    target = tmp_path / "R.md"
    target.write_text("\n".join(["# R", BEGIN, *original, END, "after", ""]))
    run_summary_study(
        tmp_path / "s", budget=str(tmp_path / "budget"), update=str(target), keep_rows=True, progress=False
    )
    text = target.read_text()
    rows = read_table_rows(text, "R.md")
    assert [row["claim"][:12] for row in rows] == [
        "align + unif",
        "↳ today's bu",
        "↳ 3× the epo",
        "lower alignm",
        "debiased con",
        "↳ today's bu",
        "↳ 3× the epo",
        "plain contra",
        "plain contra",
    ]  # the temperature claim has no original row here: its rows go to the end, the claim named
    assert rows[-1]["claim"] == (
        "plain contrastive is most accurate at τ ≈ 0.2–0.3: 3× the epochs, 3 seeds (budget study)"
    )
    assert kept in text.splitlines() and text.startswith("# R\n") and text.endswith(f"{END}\nafter\n")
    assert rows[2]["here"].endswith("→ reproduced at the longer budget") and rows[2]["verdict"] == "reproduced"
    assert rows[1]["here"].startswith("mnist5k 10 ep: fails (points below the best moderate: w = 0.25: 0.0")
    # renewing keeps one copy of each row
    run_summary_study(
        tmp_path / "s2", budget=str(tmp_path / "budget"), update=str(target), keep_rows=True, progress=False
    )
    assert read_table_rows(target.read_text(), "R.md") == rows


def test_cli_runs_the_study_and_refuses_bad_folders_in_one_line(tmp_path: Path, design_folders: dict, capsys) -> None:
    from aligniform.cli import main

    out = tmp_path / "cli"
    assert main(["study", "budget", "--out", str(out), "--set", f"missing={tmp_path}"]) == 2
    assert "--set" in capsys.readouterr().err
    assert main(["study", "budget", "--out", str(out), "--set", f"debiased={tmp_path / 'nothing'}"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "nothing/sweep.csv does not exist" in error and not out.exists()
    assert main(["study", "budget", "--out", str(out), "--set", "temperature=a"]) == 2
    assert "needs two study folders" in capsys.readouterr().err
    arguments = ["study", "budget", "--out", str(out), "--set", f"debiased={design_folders['debiased']}"]
    assert main([*arguments, "--set", "resamples=100", "--set", "progress=false"]) == 0
    assert json.loads((out / "budget.json").read_text())["claims"]["debiased"]["outcome"] == "not reproduced at either"
    # summary.keep_rows without a file to keep the rows of
    assert (
        main(["study", "summary", "--out", str(tmp_path / "s"), "--set", f"budget={out}", "--set", "keep_rows=true"])
        == 2
    )
    assert "--set update" in capsys.readouterr().err  # rendered as the CLI spells it
