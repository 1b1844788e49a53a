"""The reproduction summary: one row per claim of the papers, read from the studies' finished outputs.

Each study writes ``<out>/<study>.json``; this module turns those files into the summary table of
REPRODUCTION.md (claim, the paper's evidence, the measured numbers here, and a verdict: *reproduced*,
*partly* or *not reproduced*; *not evaluable* where a number is missing). Nothing is trained: the table is
regenerated from the runs by ``aligniform study summary`` (the command is in REPRODUCTION.md).

The verdicts come from the studies' own pre-registered decision rules where they have them (the Figure 5
study's intervals and ablation predictions, the temperature study's claims); for the others the rule is
stated in the builder's docstring below and applies to the numbers as they come.

With ``update`` set to a markdown file, the table replaces the lines between :data:`BEGIN` and :data:`END` in
that file (written atomically; the file and its markers are checked before anything is written).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._numerics import is_finite_number
from .common import (
    Progress,
    build_options,
    difference_with_error,
    mean_sd_cell,
    options_dict,
    read_study_json,
    write_outputs,
)
from .summary_table import (  # noqa: F401 (re-exported: the documented names)
    BEGIN,
    END,
    HEADERS,
    SummaryInputError,
    merge_rows,
    place_rows,
    read_table_rows,
    replace_between_markers,
    summary_table,
)
from .verdicts import Claim, Verdict, by_margin, combine

STUDY = "summary"
REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_EVALUABLE = (
    Verdict.REPRODUCED,
    Verdict.PARTLY,
    Verdict.NOT_REPRODUCED,
    Verdict.NOT_EVALUABLE,
)


@dataclass
class SummaryOptions:
    """Where each study's finished output folder is (empty: that study's rows are left out).

    Attributes:
        demo: the folder of ``aligniform demo`` (its ``results.json``).
        correlation: the Figure 5 study's folders, one per dataset (``correlation.json`` each).
        temperature: the temperature study's folder.
        theorem1: the Theorem 1 study's folder.
        latent_classes: the latent-classes study's folder.
        family: the loss-family study's folder.
        budget: the budget study's folder (``budget.json``): two rows below each claim it retested.
        update: a markdown file whose table between the summary markers is replaced (e.g. REPRODUCTION.md).
        keep_rows: with ``update``, keep the rows of that file's table that no study given here writes (matched
            by claim and paper), so one study's rows can be added or renewed without every other study's folder.
        progress: progress lines.
    """

    demo: str = ""
    correlation: tuple[str, ...] = ()
    temperature: str = ""
    theorem1: str = ""
    latent_classes: str = ""
    family: str = ""
    budget: str = ""
    update: str = ""
    keep_rows: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        self.correlation = tuple(str(folder) for folder in self.correlation)
        if self.keep_rows and not self.update:
            raise ValueError("`keep_rows` keeps the rows of the file named by `update`: set `update` too")


def _read(folder: str, name: str) -> dict:
    return read_study_json(
        folder, name, SummaryInputError, f"run the study into {folder} first, or leave this option out"
    )


def _num(value: Any, digits: int = 2, scale: float = 1.0, sign: bool = False) -> str:
    if not is_finite_number(value):
        return "—"
    return f"{scale * value:{'+' if sign else ''}.{digits}f}".replace("-", "−")


def _interval(estimate: Any, low: Any, high: Any, digits: int = 2) -> str:
    return f"{_num(estimate, digits, sign=True)} [{_num(low, digits, sign=True)}, {_num(high, digits, sign=True)}]"


def _keyed_interval(entry: dict, key: str) -> str:
    """``entry[key]`` with its interval ``entry[key + "_low"]``, ``entry[key + "_high"]``."""
    return _interval(entry.get(key), entry.get(f"{key}_low"), entry.get(f"{key}_high"))


def _row(claim: str, paper: str, here: str, verdict: str) -> dict[str, str]:
    return Claim(claim, paper, here, Verdict(verdict)).as_row()


# ----------------------------------------------------------------------------- one builder per study


def demo_rows(results: dict) -> list[dict[str, str]]:
    """W&I Table 1 in miniature. *Reproduced* when align + uniform is at most 0.5 points (about one seed's
    spread) below contrastive on both linear and 5-NN and both beat raw pixels; *partly* on one protocol.
    """
    rows = results["results"]
    au, c, raw = rows.get("align_uniform", {}), rows.get("contrastive", {}), rows.get("raw pixels", {})
    keys = ("linear_acc", "knn_acc")
    if not all(isinstance(r.get(k), (int, float)) for r in (au, c, raw) for k in keys):
        return [_row("align + uniform trains encoders as good as contrastive", "W&I Table 1", "—", NOT_EVALUABLE)]
    level = [au[k] >= c[k] - 0.005 and min(au[k], c[k]) > raw[k] for k in keys]
    here = (
        f"mnist5k, {results.get('epochs')} epochs, one seed: {_num(au['linear_acc'], 1, 100)} vs "
        f"{_num(c['linear_acc'], 1, 100)} % linear, {_num(au['knn_acc'], 1, 100)} vs {_num(c['knn_acc'], 1, 100)} % "
        f"5-NN; raw pixels {_num(raw['linear_acc'], 1, 100)} / {_num(raw['knn_acc'], 1, 100)}"
    )
    verdict = REPRODUCED if all(level) else PARTLY if any(level) else NOT_REPRODUCED
    return [
        _row(
            "align + uniform trains encoders as good as contrastive",
            "W&I Table 1 (STL-10: 84.43 vs 83.89 % fc7 linear)",
            here,
            verdict,
        )
    ]


def _decided(verdict: Any, *bounds: Any) -> str:
    """The study's interval verdict as a summary verdict; *not evaluable* when an interval could not be computed."""
    if not all(is_finite_number(bound) for bound in bounds):
        return NOT_EVALUABLE
    return Verdict.in_summary_of(verdict, unknown=NOT_REPRODUCED)


def correlation_rows(studies: list[dict]) -> list[dict[str, str]]:
    """W&I Figure 5 and the Sec. 5 ablation, one row per claim with every dataset's numbers.

    Per dataset the study's pre-registered verdict is taken (correlation_design.md): a Spearman interval below 0
    is *reproduced*, otherwise *not reproduced* (the "contradicted" / "not shown" of the study); the regression's
    *reproduces* / *partly*; an ablation prediction that *holds* is *reproduced*. Datasets combine by
    :func:`combine`.
    """
    rows = []
    for metric, claim in (
        ("uniformity", "lower uniformity ↔ higher accuracy across encoders"),
        ("alignment", "lower alignment ↔ higher accuracy across encoders"),
    ):
        parts, verdicts = [], []
        for study in studies:
            entry = study["verdict"][metric]
            ratio = study.get("precondition", {}).get("ratio")
            parts.append(
                f"{study['dataset']}: ρ = {_keyed_interval(entry, 'spearman')} (n = {entry.get('n')}"
                + (f"; accuracy spread {_num(ratio, 1)}× the seed spread)" if metric == "uniformity" else ")")
            )
            verdicts.append(_decided(entry.get("verdict"), entry.get("spearman_low"), entry.get("spearman_high")))
        rows.append(
            _row(
                claim,
                "W&I Fig. 5 (304 STL-10 encoders)",
                "; ".join(parts) + "; 5-NN on the output layer, 95 % bootstrap intervals",
                combine(verdicts),
            )
        )
    parts, verdicts = [], []
    for study in studies:
        fit = study["verdict"]["both_low_is_best"]
        parts.append(
            f"{study['dataset']}: β_align = {_keyed_interval(fit, 'beta_alignment')}, "
            f"β_uniform = {_keyed_interval(fit, 'beta_uniformity')} points per SD"
        )
        verdicts.append(_decided(fit.get("verdict"), fit.get("beta_alignment_low"), fit.get("beta_uniformity_low")))
    rows.append(
        _row("both low is best (accuracy regressed on both metrics)", "W&I Fig. 5", "; ".join(parts), combine(verdicts))
    )
    for key, claim in (
        ("alignment_alone_collapses", "alignment alone collapses"),
        ("uniformity_alone_lacks_invariance", "uniformity alone lacks invariance (less aligned, less accurate)"),
        ("moderate_ratios_work", "align + uniform works at moderate weight ratios (w ≤ 4), not at 8–16"),
    ):
        parts, verdicts = [], []
        for study in studies:
            prediction = study["ablation"][key]
            parts.append(f"{study['dataset']}: {prediction['result']}{_ablation_numbers(key, prediction)}")
            verdicts.append(Verdict.in_summary_of(prediction["result"]))
        rows.append(_row(claim, "W&I Sec. 5", "; ".join(parts), combine(verdicts)))
    return rows


def _ablation_numbers(key: str, prediction: dict) -> str:
    if key == "alignment_alone_collapses":
        values = [
            f"{name.replace('alpha=', 'α = ')} L_uniform {_num((numbers or {}).get('uniformity'), 3)}"
            for name, numbers in prediction["encoders"].items()
        ]
        return f" ({', '.join(values)})"
    if key == "uniformity_alone_lacks_invariance":
        alone = prediction.get("uniform_alone") or {}
        return (
            f" (alignment {_num(alone.get('alignment'), 3)} vs ≤ "
            f"{_num(prediction.get('max_moderate_alignment'), 3)}; {_num(prediction.get('accuracy_below_median'), 1)} "
            f"points below the median, 3s = {_num(prediction.get('three_s'), 1)})"
        )
    from .correlation_report import ratio_label

    below = [f"w = {ratio_label(e['w'])}: {_num(e.get('below_best'), 1)}" for e in prediction["encoders"]]
    return f" (points below the best moderate: {', '.join(below)})"


def temperature_rows(results: dict) -> list[dict[str, str]]:
    """W&L Table 1: the temperature study's own pre-registered verdicts (temperature_design.md)."""
    from .temperature_report import claim_summary

    options = results["options"]
    seeds = len(options.get("seeds", [0]))
    setting = f"{options.get('dataset')}, {options['epochs']} epochs, {seeds} seed{'s' if seeds > 1 else ''}: "
    return [
        _row(
            claim["claim"],
            "W&L Table 1 (CIFAR-10)",
            setting + claim_summary(claim),
            Verdict.in_summary_of(claim["verdict"]),
        )
        for claim in results.get("claims", [])
    ]


def theorem1_rows(results: dict) -> list[dict[str, str]]:
    """W&I Theorem 1. *Reproduced* when every curve's gap shrinks (the study's ``gap_shrinks``), *partly* when
    some do; the log–log slopes and M·gap against the predicted c are the numbers shown.
    """
    curves = [
        curve
        for source in ("synthetic", "encoder")
        if source in results
        for curve in results[source]["curves"].values()
    ]
    if not curves:
        return []
    slopes = [c["slope"] for c in curves if is_finite_number(c.get("slope"))]
    errors = [
        abs(c["rows"][-1]["m_times_gap"] / c["predicted_m_times_gap"] - 1)
        for c in curves
        if is_finite_number(c.get("predicted_m_times_gap"))
        and c["predicted_m_times_gap"]
        and is_finite_number(c["rows"][-1].get("m_times_gap"))
    ]
    shrinking = [bool(c["gap_shrinks"]) for c in curves]
    verdict = REPRODUCED if all(shrinking) else PARTLY if any(shrinking) else NOT_REPRODUCED
    here = f"{sum(shrinking)} of {len(curves)} curves shrink"
    if slopes:
        here += f"; log–log slope {_num(min(slopes), 2)} to {_num(max(slopes), 2)}"
    if errors:
        here += f"; M·gap within {_num(100 * min(errors), 0)}–{_num(100 * max(errors), 0)} % of the predicted c"
    return [_row("L_contrastive − log M → Theorem 1's limit, gap ~ c/M", "W&I Thm. 1", here, verdict)]


def latent_classes_rows(results: dict) -> list[dict[str, str]]:
    """Arora et al. *Reproduced* when the median within-setting and the pooled Spearman ρ(L_un, accuracy) are
    negative and Lemma 4.3's bound held at every checkpoint; *partly* when only the correlations are negative.
    """
    pooled, settings = results["pooled"], results["settings"]
    records = [record for setting in settings for record in setting["records"]]
    # The study's own tolerance for estimated class means (latent_classes.py): 0.01.
    held = sum(record["binary_loss"] <= record["sup_bound"] + 0.01 for record in records)
    within, overall = pooled["median_within_setting_unsup_vs_accuracy"], pooled["unsup_vs_accuracy"]
    if not (is_finite_number(within) and is_finite_number(overall)):
        verdict = NOT_EVALUABLE
    else:
        verdict = (REPRODUCED if held == len(records) else PARTLY) if within < 0 and overall < 0 else NOT_REPRODUCED
    here = (
        f"Spearman ρ(L_un, accuracy) = {_num(pooled['median_within_setting_unsup_vs_accuracy'])} (median within a "
        f"setting), {_num(pooled['unsup_vs_accuracy'])} pooled; Lemma 4.3's bound held at {held} of "
        f"{len(records)} checkpoints"
    )
    return [_row("mean-classifier accuracy follows the unsupervised loss", "Arora et al. 2019", here, verdict)]


def _entry(results: dict, objective: str, batch: int) -> dict | None:
    return next((s for s in results["summary"] if s["objective"] == objective and s["batch_size"] == batch), None)


def _mean_sd(entry: dict | None, key: str, scale: float = 1.0, digits: int = 3) -> str:
    return mean_sd_cell(entry, key, scale, digits).replace("-", "−")


def family_rows(results: dict) -> list[dict[str, str]]:
    """The loss family study: SupCon's tolerance, DCL at small batch, debiased vs SimCLR's NT-Xent.

    Each compares means over seeds with the rule of :func:`by_margin`, on the study's accuracy (linear probe,
    or 5-NN without one). DCL's claim needs its premise: NT-Xent must lose accuracy from the large to the small
    batch by more than 2 standard errors; then the verdict is DCL's small-batch accuracy against NT-Xent's.
    Without the premise the claim cannot be tested on this data: *not evaluable*, and the row says why.
    """
    options = results["options"]
    big, small = options["batch_size"], options.get("small_batch")
    seeds = f"{len(options['seeds'])} seeds" if len(options["seeds"]) > 1 else "1 seed"
    setting = f"{options['dataset']}, {options['epochs']} epochs, {seeds}: "
    protocol = "5-NN" if options.get("linear_probe") == "none" else "linear"
    rows = []
    supcon, plain = _entry(results, "supervised_contrastive", big), _entry(results, "contrastive", big)
    if supcon and plain:
        rows.append(
            _row(
                "SupCon's tolerance is higher than InfoNCE's",
                "Khosla et al. 2020; W&L",
                setting + f"{_mean_sd(supcon, 'tolerance')} vs {_mean_sd(plain, 'tolerance')}",
                by_margin(*difference_with_error(supcon, plain, "tolerance")),
            )
        )
    nt_big, nt_small = _entry(results, "nt_xent", big), _entry(results, "nt_xent", small) if small else None
    dcl_big, dcl_small = _entry(results, "decoupled", big), _entry(results, "decoupled", small) if small else None
    if nt_big and nt_small and dcl_big and dcl_small:
        premise = by_margin(*difference_with_error(nt_big, nt_small, "accuracy"))
        here = setting + (
            f"batch {big} → {small}: NT-Xent {_mean_sd(nt_big, 'accuracy', 100, 2)} → "
            f"{_mean_sd(nt_small, 'accuracy', 100, 2)} %, DCL {_mean_sd(dcl_big, 'accuracy', 100, 2)} → "
            f"{_mean_sd(dcl_small, 'accuracy', 100, 2)} % {protocol}"
        )
        if premise == REPRODUCED:
            verdict = by_margin(*difference_with_error(dcl_small, nt_small, "accuracy"))
        elif premise == NOT_EVALUABLE:
            verdict = NOT_EVALUABLE
        else:
            verdict = NOT_EVALUABLE
            here += "; NT-Xent does not degrade at the small batch, so the claim's premise is absent here"
        rows.append(_row("DCL trains well at small batch where NT-Xent degrades", "Yeh et al. 2022", here, verdict))
    debiased, nt = _entry(results, "debiased", big), nt_big
    if debiased and nt:
        rows.append(
            _row(
                "debiased contrastive beats SimCLR (NT-Xent)",
                "Chuang et al. 2020",
                setting
                + f"{_mean_sd(debiased, 'accuracy', 100, 2)} vs {_mean_sd(nt, 'accuracy', 100, 2)} % {protocol}",
                by_margin(*difference_with_error(debiased, nt, "accuracy")),
            )
        )
    return rows


# ----------------------------------------------------------------------------- the table and the file


def summary_rows(options: SummaryOptions, place: bool = True) -> list[dict[str, str]]:
    """Every claim row, in REPRODUCTION.md's order, from the folders the options name (reading only).

    With ``place``, a row that retests another claim (``follows``) goes right below that claim's row
    (:func:`~.summary_table.place_rows`); without, such rows come last, for :func:`~.summary_table.merge_rows`.

    Raises:
        SummaryInputError: a study output is missing, not JSON, or lacks what its builder reads (e.g. written
            by an older version): the message names the file.
    """
    sources: list[tuple[Any, list[str], str]] = [
        (demo_rows, [options.demo] if options.demo else [], "results.json"),
        (correlation_rows, list(options.correlation), "correlation.json"),
        (temperature_rows, [options.temperature] if options.temperature else [], "temperature.json"),
        (theorem1_rows, [options.theorem1] if options.theorem1 else [], "theorem1.json"),
        (latent_classes_rows, [options.latent_classes] if options.latent_classes else [], "latent-classes.json"),
        (family_rows, [options.family] if options.family else [], "family.json"),
        (_budget_rows, [options.budget] if options.budget else [], "budget.json"),
    ]
    rows: list[dict[str, str]] = []
    for build, folders, name in sources:
        if not folders:
            continue
        studies = [_read(folder, name) for folder in folders]
        try:
            rows += build(studies) if build is correlation_rows else build(studies[0])
        except (KeyError, TypeError, IndexError, AttributeError, ZeroDivisionError) as error:
            files = ", ".join(str(Path(folder) / name) for folder in folders)
            raise SummaryInputError(
                f"{files} lacks what the summary reads ({type(error).__name__}: {error}); rerun that study with "
                "this version of aligniform"
            ) from None
    if not place:
        return rows
    return place_rows([row for row in rows if "follows" not in row], [row for row in rows if "follows" in row])


def _budget_rows(results: dict) -> list[dict[str, str]]:
    """The budget study's two rows per retested claim (:func:`aligniform.studies.budget_report.budget_rows`)."""
    from .budget_report import budget_rows

    return budget_rows(results)


def run_summary_study(out: str | Path, options: SummaryOptions | None = None, **overrides: Any) -> dict:
    """Write ``summary.json`` and ``summary.md`` (the table) and, with ``update``, rewrite that file's table.

    Every input is read and the file to update is checked before anything is written; the table is printed
    first, so it is seen even if a write fails.

    Returns:
        ``options``, ``rows`` (claim, paper, here, verdict) and ``updated`` (the rewritten file or None).

    Examples:
        >>> results = run_summary_study(Path("/tmp/summary"), temperature="runs/temperature_seeds")  # doctest: +SKIP
        >>> {row["verdict"] for row in results["rows"]} <= {"reproduced", "partly", "not reproduced"}  # doctest: +SKIP
        True
    """
    from .._outputs import check_output_path
    from .update_file import check_update_target, read_update_text, write_update

    options = build_options(SummaryOptions, options, overrides)
    progress = Progress(STUDY, options.progress)
    rows = summary_rows(options, place=not options.keep_rows)
    updated_text, target = None, None
    if options.update:  # checked before anything is written: links followed, endings kept (update_file)
        target = check_update_target(options.update)
        text = read_update_text(target)
        if options.keep_rows:
            rows = merge_rows(read_table_rows(text, options.update), rows)
        table = summary_table(rows)
        updated_text = replace_between_markers(text, table, options.update)
        # summary.md must not be the file to update: one write would undo the other.
        check_output_path(out, "`out`", folder=True, inputs=[target], files=[f"{STUDY}.json", f"{STUDY}.md"])
    else:
        table = summary_table(rows)
    print(table, flush=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"options": options_dict(options), "rows": rows, "updated": options.update or None}
    write_outputs(out, STUDY, results, "# Reproduction summary\n\n" + table + "\n")
    if updated_text is not None and target is not None:
        write_update(target, updated_text)
        progress(f"replaced the summary table in {options.update}")
    return results
