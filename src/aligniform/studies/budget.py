"""Are three "not reproduced" claims budget effects? The pre-registered test of docs/results/budget_design.md.

Nothing is trained here: the runs are made by the design's commands (two sweeps of the weight ratio, two
temperature studies, one sweep of debiased vs NT-Xent, each at today's budget and at 3× the epochs, 3 seeds),
and this study reads their finished outputs, applies the design's rules (:mod:`.budget_rules`) at each budget and
names the outcome of each claim. It writes ``budget.json`` and ``budget.md``; ``aligniform study summary --set
budget=FOLDER`` adds its rows to the reproduction summary.

Examples:
    >>> results = run_budget_study("runs/budget", ratio=("runs/budget/ratio_mnist5k",),
    ...                            debiased="runs/budget/debiased")  # doctest: +SKIP
    >>> results["claims"]["debiased"]["outcome"]  # doctest: +SKIP
    'not reproduced at either'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..stats import BOOTSTRAP_RESAMPLES
from .budget_report import budget_markdown
from .budget_rules import debiased_verdict, outcome, ratio_verdict, temperature_direction
from .common import Progress, build_options, options_dict, read_study_json, write_outputs
from .correlation_data import _points, encoder_role
from .verdicts import Verdict, combine

STUDY = "budget"
DESIGN = "docs/results/budget_design.md"

#: The three claims: key -> (the summary's claim text, its paper), as the original rows of the summary name them.
CLAIMS = {
    "ratio": ("align + uniform works at moderate weight ratios (w ≤ 4), not at 8–16", "W&I Sec. 5"),
    "temperature": ("plain contrastive is most accurate at τ ≈ 0.2–0.3", "W&L Table 1 (CIFAR-10)"),
    "debiased": ("debiased contrastive beats SimCLR (NT-Xent)", "Chuang et al. 2020"),
}
#: The temperature study's claim that B judges (its claim 4).
TEMPERATURE_CLAIM = CLAIMS["temperature"][0]
BUDGETS = ("today", "3×")


@dataclass
class BudgetOptions:
    """The finished runs of the design's commands (empty: that claim is left out).

    Attributes:
        ratio: the weight-ratio sweep folders, one per dataset (``sweep.csv`` each, both budgets in it).
        temperature: the two temperature study folders, today's budget and 3× (``temperature.json`` each).
        debiased: the debiased vs NT-Xent sweep folder (both budgets in it).
        resamples: bootstrap resamples of the direction numbers' intervals.
        progress: progress lines.
    """

    ratio: tuple[str, ...] = ()
    temperature: tuple[str, ...] = ()
    debiased: str = ""
    resamples: int = BOOTSTRAP_RESAMPLES
    progress: bool = True

    def __post_init__(self) -> None:
        self.ratio = tuple(str(folder) for folder in self.ratio)
        self.temperature = tuple(str(folder) for folder in self.temperature)
        if self.temperature and len(self.temperature) != 2:
            raise ValueError(
                f"`temperature` needs two study folders (today's budget and 3×), got {len(self.temperature)}"
            )


class BudgetInputError(ValueError):
    """A folder of the design's runs is missing or does not hold what the design ran; the message names it."""


def _sweep_rows(folder: str) -> list[dict]:
    from ..sweep import read_sweep

    if not (Path(folder) / "sweep.csv").is_file():
        raise BudgetInputError(f"{Path(folder) / 'sweep.csv'} does not exist: run the design's sweep into {folder}")
    return read_sweep(folder)


def _two_budgets(epochs: set, source: str) -> tuple[int, int]:
    if len(epochs) != 2:
        raise BudgetInputError(
            f"{source} holds the epoch counts {sorted(int(e) for e in epochs)}; the design runs exactly two "
            "budgets (today and 3×)"
        )
    today, longer = sorted(int(e) for e in epochs)
    return today, longer


# ----------------------------------------------------------------------------- A: weight ratio


def ratio_claim(folders: tuple[str, ...], resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Claim A from the weight-ratio sweeps (one per dataset): verdicts per dataset and budget, then the outcome."""
    datasets = []
    for folder in folders:
        # each run's weight ratio w: its role, recorded by the grid (or named by its objective in older sweeps)
        ratios = [(row, role[1]) for row in _sweep_rows(folder) if (role := encoder_role(row)) and role[0] == "ratio"]
        rows = [row for row, _ in ratios]
        if not rows:
            raise BudgetInputError(f"{folder}/sweep.csv has no align + uniform weight-ratio runs")
        names = {str(row.get("dataset")) for row in rows}
        budgets = _two_budgets({row["epochs"] for row in rows}, f"{folder}/sweep.csv")
        judged = []
        for epochs in budgets:
            by_ratio: dict[float, dict[str, list]] = {}
            for row, w in ratios:
                if int(row["epochs"]) == epochs:
                    values = by_ratio.setdefault(w, {"accuracy": [], "uniformity": [], "seeds": []})
                    values["accuracy"].append(_points(row.get("knn_acc")))
                    values["uniformity"].append(row.get("uniformity"))
                    values["seeds"].append(row.get("seed"))
            judged.append({"epochs": epochs, **ratio_verdict(by_ratio, resamples=resamples)})
        today, longer = (entry["shortfall"]["points"] for entry in judged)
        datasets.append(
            {
                "dataset": "/".join(sorted(names)),
                "folder": folder,
                "budgets": judged,
                "shortfall_change": None if today is None or longer is None else longer - today,
            }
        )
    verdicts = [
        combine([Verdict.in_summary_of(dataset["budgets"][index]["verdict"]) for dataset in datasets])
        for index in range(2)
    ]
    return {"datasets": datasets, "verdicts": verdicts, "outcome": outcome(*verdicts)}


# ----------------------------------------------------------------------------- B: temperature


def _read_json(folder: str, name: str) -> dict:
    return read_study_json(folder, name, BudgetInputError, f"run the design's study into {folder}")


def temperature_claim(folders: tuple[str, ...]) -> dict:
    """Claim B from the two temperature studies: the study's own claim-4 verdict at each budget, then the outcome."""
    studies = sorted((_read_json(folder, "temperature.json") | {"folder": folder} for folder in folders), key=_epochs)
    if len({_epochs(study) for study in studies}) != 2:
        raise BudgetInputError(f"{' and '.join(folders)} must hold two different epoch counts (today and 3×)")
    budgets = []
    for study in studies:
        claims = {claim["claim"]: claim for claim in study.get("claims", [])}
        main = claims.get(TEMPERATURE_CLAIM)
        if main is None:
            raise BudgetInputError(f"{study['folder']}/temperature.json has no verdict for {TEMPERATURE_CLAIM!r}")
        plain = [entry for entry in study["summary"] if entry.get("loss") == "contrastive"]
        budgets.append(
            {
                "epochs": _epochs(study),
                "folder": study["folder"],
                "seeds": list(study["options"].get("seeds", [])),
                "claim": main,
                "verdict": Verdict.in_summary_of(main["verdict"]),
                "per_tau": [
                    {key: entry.get(key) for key in ("tau", "accuracy", "accuracy_std", "accuracy_n", "seeds")}
                    for entry in sorted(plain, key=lambda entry: entry["tau"])
                ],
                "direction": temperature_direction(plain),
                "secondary": {
                    name: claims[name]["verdict"]
                    for name in claims
                    if name.startswith(("uniformity falls", "tolerance rises"))
                },
            }
        )
    today, longer = (budget["direction"]["points"] for budget in budgets)
    verdicts = [budget["verdict"] for budget in budgets]
    return {
        "budgets": budgets,
        "verdicts": verdicts,
        "outcome": outcome(*verdicts),
        "direction_change": None if today is None or longer is None else longer - today,
    }


def _epochs(study: dict) -> int:
    return int(study["options"]["epochs"])


# ----------------------------------------------------------------------------- C: debiased vs NT-Xent


def debiased_claim(folder: str, resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Claim C from the debiased vs NT-Xent sweep: the margin rule on linear accuracy at each budget, 5-NN beside."""
    rows = _sweep_rows(folder)
    names = {str(row.get("objective", "")).split("(")[0].strip() for row in rows}
    if not {"nt_xent", "debiased_contrastive"} <= names:
        raise BudgetInputError(
            f"{folder}/sweep.csv must hold nt_xent and debiased_contrastive runs, got {sorted(names)}"
        )
    budgets = []
    for epochs in _two_budgets({row["epochs"] for row in rows}, f"{folder}/sweep.csv"):

        def column(name: str, key: str, epochs: int = epochs) -> list:
            return [
                _points(row.get(key))
                for row in rows
                if int(row["epochs"]) == epochs and str(row["objective"]).startswith(name)
            ]

        linear = debiased_verdict(column("debiased", "linear_acc"), column("nt_xent", "linear_acc"), resamples)
        knn = debiased_verdict(column("debiased", "knn_acc"), column("nt_xent", "knn_acc"), resamples)
        budgets.append({"epochs": epochs, **linear, "knn": knn})
    today, longer = (budget["difference"] for budget in budgets)
    verdicts = [budget["verdict"] for budget in budgets]
    return {
        "folder": folder,
        "budgets": budgets,
        "verdicts": verdicts,
        "outcome": outcome(*verdicts),
        "difference_change": None if today is None or longer is None else longer - today,
    }


# ----------------------------------------------------------------------------- the study


def run_budget_study(out: str | Path, options: BudgetOptions | None = None, **overrides: Any) -> dict:
    """Judge the design's finished runs; write ``budget.json`` and ``budget.md`` into ``out``.

    Every input is read and judged before anything is written, and the report is printed first.

    Returns:
        ``options``, ``design`` and ``claims`` (``ratio``, ``temperature``, ``debiased``: those given), each with
        its verdict per budget (``verdicts``: today, 3×), its ``outcome`` and its numbers.

    Raises:
        BudgetInputError: a folder is missing, or does not hold two budgets of the design's runs.
    """
    options = build_options(BudgetOptions, options, overrides)
    if not (options.ratio or options.temperature or options.debiased):
        raise BudgetInputError("name at least one of `ratio`, `temperature`, `debiased` (the design's run folders)")
    progress = Progress(STUDY, options.progress)
    claims: dict[str, dict] = {}
    if options.ratio:
        claims["ratio"] = ratio_claim(options.ratio, options.resamples)
    if options.temperature:
        claims["temperature"] = temperature_claim(options.temperature)
    if options.debiased:
        claims["debiased"] = debiased_claim(options.debiased, options.resamples)
    for key, claim in claims.items():
        claim["claim"], claim["paper"] = CLAIMS[key]
        progress(f"{claim['claim']}: today {claim['verdicts'][0]}, 3× {claim['verdicts'][1]} → {claim['outcome']}")
    results: dict[str, Any] = {"options": options_dict(options), "design": DESIGN, "claims": claims}
    markdown = budget_markdown(results)
    print(markdown, flush=True)
    write_outputs(Path(out), STUDY, results, markdown)
    return results
