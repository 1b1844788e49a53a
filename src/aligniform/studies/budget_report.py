"""The budget study's report: ``budget.md`` and the rows it adds to the reproduction summary."""

from __future__ import annotations

from typing import Any

from .._numerics import is_finite_number
from .common import markdown_table
from .verdicts import Claim, Verdict

#: The summary rows' claim cells (below the claim's original row, which names the claim).
ROW_LABELS = ("↳ today's budget, 3 seeds (budget study)", "↳ 3× the epochs, 3 seeds (budget study)")
BUDGET_NAMES = ("today", "3×")


def _num(value: Any, digits: int = 1, sign: bool = False) -> str:
    if not is_finite_number(value):
        return "—"
    return f"{value:{'+' if sign else ''}.{digits}f}".replace("-", "−")


def _mean_sd(mean: Any, sd: Any, digits: int = 2) -> str:
    return _num(mean, digits) + ("" if not is_finite_number(sd) else f" ± {_num(sd, digits)}")


def _interval(low: Any, high: Any, digits: int = 1) -> str:
    return f"[{_num(low, digits, True)}, {_num(high, digits, True)}]"


def _scaled(value: Any) -> float | None:
    """A fraction's spread in points; None stays None (one seed), 0 stays 0 (seeds that agree exactly)."""
    return None if value is None else 100 * value


def _ratio_label(w: float) -> str:
    return f"{w:g}"


# ----------------------------------------------------------------------------- one budget of one claim, in a line


def ratio_line(dataset: dict, index: int) -> str:
    """Claim A on one dataset at one budget: the verdict and each ratio's points below the best moderate mean."""
    budget = dataset["budgets"][index]
    below = ", ".join(
        f"w = {_ratio_label(entry['w'])}: {_num(entry['below_best'])}" + (" (collapsed)" if entry["collapsed"] else "")
        for entry in budget["ratios"]
    )
    return (
        f"{dataset['dataset']} {budget['epochs']} ep: {budget['verdict']} (points below the best moderate: {below}; "
        f"margin {_num(budget['margin'])})"
    )


def temperature_line(budget: dict) -> str:
    """Claim B at one budget, in the temperature study's own words."""
    from .temperature_report import claim_summary

    return f"mnist5k {budget['epochs']} ep: {claim_summary(budget['claim'])}"


def debiased_line(budget: dict) -> str:
    """Claim C at one budget: both means, the difference and its standard error."""
    return (
        f"mnist5k {budget['epochs']} ep: {_mean_sd(budget['debiased']['value'], budget['debiased']['value_std'])} vs "
        f"{_mean_sd(budget['nt_xent']['value'], budget['nt_xent']['value_std'])} % linear (d = "
        f"{_num(budget['difference'], 2, True)}, s.e. {_num(budget['standard_error'], 2)})"
    )


def budget_lines(key: str, claim: dict, index: int) -> str:
    """What the summary's row of one budget says of the claim ``key``."""
    if key == "ratio":
        return "; ".join(ratio_line(dataset, index) for dataset in claim["datasets"])
    if key == "temperature":
        return temperature_line(claim["budgets"][index])
    return debiased_line(claim["budgets"][index])


def budget_rows(results: dict) -> list[dict[str, str]]:
    """The summary's two rows per claim (today's budget, 3×), each with ``follows``: the claim's original row.

    The 3× row's text ends with the design's outcome for the claim.
    """
    rows = []
    for key, claim in results["claims"].items():
        for index, label in enumerate(ROW_LABELS):
            here = budget_lines(key, claim, index)
            if index == 1:
                here += f"; → {claim['outcome']}"
            row = Claim(label, claim["paper"], here, Verdict(claim["verdicts"][index])).as_row()
            rows.append({**row, "follows": claim["claim"]})
    return rows


# ----------------------------------------------------------------------------- budget.md


def budget_markdown(results: dict) -> str:
    """The report: per claim the outcome, each budget's verdict and numbers, and the direction numbers."""
    lines = [
        "# Is it the budget? Three claims at today's budget and at 3× the epochs",
        "",
        f"Pre-registered design: `{results['design']}`. Verdict rules and outcomes are the design's sections 1 and 4;",
        "the direction numbers decide nothing. Accuracies in points; mean ± sample SD over seeds.",
    ]
    claims = results["claims"]
    if "ratio" in claims:
        lines += _ratio_section(claims["ratio"])
    if "temperature" in claims:
        lines += _temperature_section(claims["temperature"])
    if "debiased" in claims:
        lines += _debiased_section(claims["debiased"])
    return "\n".join(lines) + "\n"


def _heading(claim: dict) -> list[str]:
    return [
        "",
        f"## {claim['claim']} ({claim['paper']})",
        "",
        f"**Outcome: {claim['outcome']}** (today: {claim['verdicts'][0]}, 3×: {claim['verdicts'][1]}).",
        "",
    ]


def _ratio_section(claim: dict) -> list[str]:
    lines = _heading(claim)
    for dataset in claim["datasets"]:
        rows = []
        for budget in dataset["budgets"]:
            for entry in budget["ratios"]:
                rows.append(
                    [
                        f"{budget['epochs']}",
                        _ratio_label(entry["w"]),
                        f"{entry['accuracy_n']}",
                        _mean_sd(entry["accuracy"], entry["accuracy_std"]),
                        _num(entry["below_best"]),
                        _mean_sd(entry["uniformity"], None, 3),
                        "yes" if entry["collapsed"] else "no" if entry["collapsed"] is False else "—",
                        {True: "yes", False: "no", None: "—"}[entry["as_predicted"]],
                    ]
                )
        lines += [
            f"**{dataset['dataset']}** (`{dataset['folder']}`), output-layer 5-NN:",
            "",
            markdown_table(
                ("epochs", "w", "seeds", "5-NN %", "below best", "L_uniform", "collapsed", "as predicted"), rows
            ),
            "",
        ]
        for budget in dataset["budgets"]:
            fall = budget["shortfall"]
            rho = budget["ratio_uniformity_spearman"]["spearman"]
            lines.append(
                f"- {budget['epochs']} epochs: **{budget['verdict']}**; s = {_num(budget['s'], 2)}, margin "
                f"{_num(budget['margin'], 2)}; w = 4 is {_num(fall['points'], 2)} points below the best moderate "
                f"mean (s.e. {_num(fall['standard_error'], 2)}, 95 % bootstrap "
                f"{_interval(fall['low'], fall['high'], 2)}); "
                f"Spearman ρ(w, L_uniform) = {_num(rho, 2, True)}"
            )
        change = _num(dataset["shortfall_change"], 2, True)
        lines += [f"- change of the w = 4 shortfall from today to 3×: {change} points", ""]
    return lines


def _temperature_section(claim: dict) -> list[str]:
    lines = _heading(claim)
    taus = [entry["tau"] for entry in claim["budgets"][0]["per_tau"]]
    rows = []
    for budget in claim["budgets"]:
        by_tau = {entry["tau"]: entry for entry in budget["per_tau"]}
        rows.append(
            [f"{budget['epochs']}"]
            + [
                _mean_sd(100 * by_tau[tau]["accuracy"], _scaled(by_tau[tau]["accuracy_std"]))
                if tau in by_tau and by_tau[tau]["accuracy"] is not None
                else "—"
                for tau in taus
            ]
            + [budget["verdict"]]
        )
    lines += [
        "Plain contrastive, backbone linear probe (%):",
        "",
        markdown_table(["epochs", *(f"τ = {tau:g}" for tau in taus), "verdict"], rows),
        "",
    ]
    for budget in claim["budgets"]:
        direction = budget["direction"]
        secondary = ", ".join(f"{name}: {verdict}" for name, verdict in budget["secondary"].items())
        lines.append(
            f"- {temperature_line(budget)}; best at τ ∈ {{0.2, 0.3}} minus best at τ ∈ {{0.07, 0.1}}: "
            f"{_num(direction['points'], 2, True)} (s.e. {_num(direction['standard_error'], 2)}); "
            f"secondary: {secondary}"
        )
    lines += [f"- change of that difference from today to 3×: {_num(claim['direction_change'], 2, True)} points", ""]
    return lines


def _debiased_section(claim: dict) -> list[str]:
    lines = _heading(claim)
    rows = [
        [
            f"{budget['epochs']}",
            _mean_sd(budget["debiased"]["value"], budget["debiased"]["value_std"]),
            _mean_sd(budget["nt_xent"]["value"], budget["nt_xent"]["value_std"]),
            f"{_num(budget['difference'], 2, True)} (s.e. {_num(budget['standard_error'], 2)})",
            _interval(budget["low"], budget["high"], 2),
            budget["verdict"],
            f"{_num(budget['knn']['difference'], 2, True)}: {budget['knn']['verdict']}",
        ]
        for budget in claim["budgets"]
    ]
    lines += [
        f"`{claim['folder']}`, backbone linear probe (%), seeds per objective: "
        + ", ".join(f"{b['debiased']['value_n']} + {b['nt_xent']['value_n']}" for b in claim["budgets"]),
        "",
        markdown_table(
            ("epochs", "debiased", "NT-Xent", "d", "95 % bootstrap", "verdict", "5-NN d (decides nothing)"), rows
        ),
        "",
        f"- change of d from today to 3×: {_num(claim['difference_change'], 2, True)} points",
        "",
    ]
    return lines
