"""The hypersphere loss family on one map: where each objective puts the same encoder.

The same encoder, data, budget and seeds are trained with each objective of
the related literature (contrastive, align + uniform, hard contrastive, SimCLR's
NT-Xent, supervised contrastive, decoupled, debiased, sigmoid); each trained
encoder is evaluated on the test set: alignment and uniformity (Wang & Isola
2020), tolerance (Wang & Liu 2021), linear / 5-NN accuracy and the mean
classifier (Arora et al. 2019). The figure draws them as Wang & Isola's
Figure 5 draws encoders: uniformity on x, alignment on y, accuracy as colour.
Supervised contrastive sees the labels; it is marked everywhere.

Two claims of the papers are tested where this data can test them:

* Yeh et al. (2022): the decoupled loss trains well at small batch where
  SimCLR's NT-Xent degrades (the negative–positive coupling). Both are also
  trained at ``small_batch``; the claim holds here if DCL loses less accuracy
  from ``batch_size`` to ``small_batch`` than NT-Xent does.
* Khosla et al. (2020) / Wang & Liu (2021): supervision gathers each class, so
  SupCon's tolerance (mean similarity of same-class test pairs) is higher than
  InfoNCE's.

With several ``seeds`` each number is a mean with its spread (the sample
standard deviation, and every seed's point in the figure). Runs live in
``<out>/family_runs/<objective>_b<batch>_s<seed>`` and are reused or resumed
like the other studies' runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._numerics import is_finite_number
from .._validation import check_positive_int
from ..config import TrainConfig
from .common import (
    Progress,
    build_options,
    cell,
    markdown_table,
    mean_sd_cell,
    options_dict,
    standard_error,
    torch_threads,
    write_outputs,
)
from .common import summarize as summarize_over_seeds
from .runs import status_counts, train_all

STUDY = "family"

#: Objective name -> (paper, spec template). ``{tau}``, ``{hard_alpha}``, ``{tau_plus}`` come from the options.
OBJECTIVES: dict[str, tuple[str, str]] = {
    "contrastive": ("InfoNCE, Wang & Isola 2020", "contrastive(tau={tau})"),
    "align_uniform": ("Wang & Isola 2020", "align(alpha=2) + uniform(t=2)"),
    "hard_contrastive": ("Wang & Liu 2021", "hard_contrastive(tau={tau}, alpha={hard_alpha})"),
    "nt_xent": ("SimCLR, Chen et al. 2020", "nt_xent(tau={tau})"),
    "supervised_contrastive": ("SupCon, Khosla et al. 2020", "supervised_contrastive(tau={tau})"),
    "decoupled": ("DCL, Yeh et al. 2022", "decoupled_contrastive(tau={tau})"),
    "debiased": ("Chuang et al. 2020", "debiased_contrastive(tau={tau}, tau_plus={tau_plus})"),
    "sigmoid": ("SigLIP, Zhai et al. 2023", "sigmoid(scale=10, bias=-10)"),
}
#: Objectives that see the labels.
SUPERVISED = ("supervised_contrastive",)
METRICS = ("alignment", "uniformity", "tolerance", "linear_acc", "knn_acc", "mean_classifier_acc")


@dataclass
class FamilyOptions:
    """Options of the family study; the defaults (10 runs) take about 15 minutes on 2 shared CPU cores (1 thread).

    Attributes:
        objectives: any of the keys of :data:`OBJECTIVES`.
        tau: the one temperature of every softmax objective (contrastive, hard,
            NT-Xent, SupCon, decoupled, debiased), so that only the loss differs.
        hard_alpha: fraction of negatives the hard contrastive loss keeps.
        tau_plus: the debiased loss's class prior τ⁺ (10 balanced classes: 0.1).
        dataset: ``mnist5k`` (default) or ``digits`` (a quick check).
        model: encoder.
        epochs: epochs per run.
        batch_size: batch size of the map.
        small_batch: the batch of the small-batch test (0: no test).
        small_batch_objectives: the objectives trained at ``small_batch`` too
            (Yeh et al. compare DCL with SimCLR's NT-Xent).
        lr: base learning rate per 256 samples (scaled with the batch).
        dim: embedding dimension.
        linear_probe: ``short``, ``paper`` or ``none`` (then accuracy is 5-NN only).
        seeds: training seeds; each (objective, batch) is trained once per seed.
        workers: runs at a time; above 1 each run trains in its own process with ``cores / workers``
            threads (and ``threads`` does not apply).
        device: ``auto``, ``cpu`` or ``cuda``.
        threads: torch intra-op threads (0: leave torch's setting); 1 is fastest on small shared CPUs.
        progress: progress lines and per-run progress bars.
    """

    objectives: tuple[str, ...] = tuple(OBJECTIVES)
    tau: float = 0.2
    hard_alpha: float = 0.25
    tau_plus: float = 0.1
    dataset: str = "mnist5k"
    model: str = "convnet"
    epochs: int = 5
    batch_size: int = 256
    small_batch: int = 32
    small_batch_objectives: tuple[str, ...] = ("nt_xent", "decoupled")
    lr: float = 0.12
    dim: int = 128
    linear_probe: str = "short"
    seeds: tuple[int, ...] = (0,)
    workers: int = 1
    device: str = "auto"
    threads: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        self.objectives = tuple(self.objectives)
        self.small_batch_objectives = tuple(self.small_batch_objectives)
        self.seeds = tuple(int(seed) for seed in self.seeds)
        for name, chosen in (("objectives", self.objectives), ("small_batch_objectives", self.small_batch_objectives)):
            unknown = [o for o in chosen if o not in OBJECTIVES]
            if unknown:
                raise ValueError(f"{name} must be some of {', '.join(OBJECTIVES)}, got {', '.join(unknown)}")
        check_positive_int(self.workers, "workers")
        if not self.objectives:
            raise ValueError(f"objectives must name at least one of {', '.join(OBJECTIVES)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be one or more distinct integers, got {self.seeds}")
        if not (is_finite_number(self.tau) and self.tau > 0):
            raise ValueError(f"tau must be a positive temperature, got {self.tau}")
        if not 0 < self.hard_alpha <= 1:
            raise ValueError(f"hard_alpha must lie in (0, 1], got {self.hard_alpha}")
        if not 0 < self.tau_plus < 1:
            raise ValueError(f"tau_plus must lie in (0, 1), got {self.tau_plus}")
        if self.small_batch < 0 or (self.small_batch and self.small_batch < 2):
            raise ValueError(f"small_batch must be 0 (no test) or a batch of 2 or more, got {self.small_batch}")


def objective_spec(name: str, options: FamilyOptions) -> str:
    """The :class:`aligniform.Objective` spec of one objective of the study.

    Examples:
        >>> objective_spec("debiased", FamilyOptions())
        'debiased_contrastive(tau=0.2, tau_plus=0.1)'
    """
    template = OBJECTIVES[name][1]
    return template.format(
        tau=f"{options.tau:g}", hard_alpha=f"{options.hard_alpha:g}", tau_plus=f"{options.tau_plus:g}"
    )


def planned_runs(options: FamilyOptions) -> list[tuple[str, int, int]]:
    """(objective, batch size, seed) of every run, the map's first, then the small-batch test's.

    Examples:
        >>> planned_runs(FamilyOptions(objectives=("decoupled",), small_batch_objectives=("decoupled",)))
        [('decoupled', 256, 0), ('decoupled', 32, 0)]
    """
    runs = [(name, options.batch_size, seed) for name in options.objectives for seed in options.seeds]
    if options.small_batch and options.small_batch != options.batch_size:
        runs += [(name, options.small_batch, seed) for name in options.small_batch_objectives for seed in options.seeds]
    return runs


def run_config(name: str, batch: int, seed: int, options: FamilyOptions, runs: Path) -> TrainConfig:
    """The :class:`aligniform.config.TrainConfig` of one run."""
    return TrainConfig(
        dataset=options.dataset,
        model=options.model,
        objective=objective_spec(name, options),
        epochs=options.epochs,
        batch_size=batch,
        lr=options.lr,
        dim=options.dim,
        linear_probe=options.linear_probe,
        seed=seed,
        device=options.device,
        out=str(runs / f"{name}_b{batch}_s{seed}"),
        progress=options.progress,
    )


def result_row(name: str, batch: int, seed: int, results: dict, status: str, run_dir: Path) -> dict:
    """One run of the study: its objective, batch, seed and final evaluation."""
    row: dict[str, Any] = {
        "objective": name,
        "paper": OBJECTIVES[name][0],
        "supervised": name in SUPERVISED,
        "batch_size": batch,
        "seed": seed,
    }
    row.update({key: results.get(key) for key in METRICS})
    linear, knn = row["linear_acc"], row["knn_acc"]
    row["accuracy"] = linear if linear is not None else knn
    row.update(train_seconds=results.get("train_seconds"), status=status, run=str(run_dir))
    return row


def summarize(rows: list[dict]) -> list[dict]:
    """Per (objective, batch): the mean and sample standard deviation over seeds of every metric."""
    summary = summarize_over_seeds(rows, ("objective", "batch_size"), (*METRICS, "accuracy"))
    # "supervised" right after the objective, where the family's JSON has always had it
    return [
        {"objective": entry["objective"], "supervised": entry["objective"] in SUPERVISED, **entry} for entry in summary
    ]


def _find(summary: list[dict], name: str, batch: int) -> dict | None:
    return next((s for s in summary if s["objective"] == name and s["batch_size"] == batch), None)


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _verdict(margin: float | None, error: float | None) -> tuple[bool | None, str]:
    """Whether a claim held (its margin > 0), and how surely: beyond two standard errors, or within them."""
    if margin is None:
        return None, "undecided (a value is missing)"
    held = margin > 0
    if error is None:
        return held, ("held" if held else "did not hold") + " (one seed: no spread to judge it by)"
    if abs(margin) <= 2 * error:
        return held, f"within the seed spread (margin {margin:+.4f}, 2 standard errors {2 * error:.4f})"
    return held, "held" if held else "did not hold"


def claims(summary: list[dict], options: FamilyOptions) -> dict:
    """The papers' claims this data can test, each with its numbers, its margin and a verdict.

    A claim's margin is positive when it held; with several seeds the verdict
    says "within the seed spread" when the margin is within two standard errors.
    """
    tests: dict[str, Any] = {}
    big, small = options.batch_size, options.small_batch
    nt = (_find(summary, "nt_xent", big), _find(summary, "nt_xent", small))
    dcl = (_find(summary, "decoupled", big), _find(summary, "decoupled", small))
    if small and nt[0] and nt[1] and dcl[0] and dcl[1]:
        nt_drop = _difference(nt[0]["accuracy"], nt[1]["accuracy"])
        dcl_drop = _difference(dcl[0]["accuracy"], dcl[1]["accuracy"])
        margin = _difference(nt_drop, dcl_drop)
        held, verdict = _verdict(margin, standard_error([nt[0], nt[1], dcl[0], dcl[1]], "accuracy"))
        tests["dcl_small_batch"] = {
            "claim": f"DCL loses less accuracy than NT-Xent from batch {big} to {small} (Yeh et al. 2022)",
            "nt_xent_drop": nt_drop,
            "decoupled_drop": dcl_drop,
            "nt_xent_small": nt[1]["accuracy"],
            "decoupled_small": dcl[1]["accuracy"],
            "margin": margin,
            "held": held,
            "verdict": verdict,
        }
    supcon = _find(summary, "supervised_contrastive", big)
    for baseline in ("contrastive", "nt_xent"):
        other = _find(summary, baseline, big)
        if supcon and other:
            margin = _difference(supcon["tolerance"], other["tolerance"])
            held, verdict = _verdict(margin, standard_error([supcon, other], "tolerance"))
            tests[f"supcon_tolerance_vs_{baseline}"] = {
                "claim": f"SupCon's tolerance is higher than {baseline}'s (Khosla et al. 2020; Wang & Liu 2021)",
                "supervised_contrastive": supcon["tolerance"],
                baseline: other["tolerance"],
                "margin": margin,
                "held": held,
                "verdict": verdict,
            }
    return tests


def markdown_report(results: dict) -> str:
    """One table (every objective and batch: mean ± standard deviation over seeds) and the claims."""
    options = results["options"]
    seeds = options["seeds"]
    spread = f"mean ± sample standard deviation over seeds {seeds}" if len(seeds) > 1 else f"seed {seeds[0]}"
    lines = [
        "# The loss family on the alignment–uniformity map",
        "",
        f"{options['model']} on {options['dataset']}, {options['epochs']} epochs, dim {options['dim']}, "
        f"τ = {options['tau']:g} for every softmax loss, hard α = {options['hard_alpha']:g}, "
        f"τ⁺ = {options['tau_plus']:g}, SigLIP scale 10 and bias −10; {spread}. Test-set metrics: alignment "
        "L_align(α = 2) and uniformity L_uniform(t = 2) (lower is better), tolerance (mean similarity of "
        "same-class pairs), accuracies in %. † sees the labels (supervised).",
        "",
    ]
    headers = [
        "objective",
        "paper",
        "batch",
        "alignment",
        "uniformity",
        "tolerance",
        "linear %",
        "5-NN %",
        "mean cl. %",
    ]
    table = []
    for entry in results["summary"]:
        name = entry["objective"] + (" †" if entry["supervised"] else "")
        table.append(
            [
                name,
                OBJECTIVES[entry["objective"]][0],
                entry["batch_size"],
                mean_sd_cell(entry, "alignment"),
                mean_sd_cell(entry, "uniformity"),
                mean_sd_cell(entry, "tolerance"),
                mean_sd_cell(entry, "linear_acc", 100, 2),
                mean_sd_cell(entry, "knn_acc", 100, 2),
                mean_sd_cell(entry, "mean_classifier_acc", 100, 2),
            ]
        )
    lines += [markdown_table(headers, table), "", "## Claims tested", ""]
    if not results["claims"]:
        lines.append("None: the objectives these claims compare were not all run.")
    for key, test in results["claims"].items():
        numbers = ", ".join(f"{k} {cell(v, 4)}" for k, v in test.items() if k not in ("claim", "held", "verdict"))
        lines.append(f"* **{key}**: {test['claim']}: {test['verdict']} ({numbers}).")
    counts = ", ".join(f"{count} {status}" for status, count in results["counts"].items())
    lines += ["", f"Run time: {results['seconds']:.1f} s (runs: {counts})."]
    return "\n".join(lines) + "\n"


def run_family_study(out: str | Path, options: FamilyOptions | None = None, **overrides: Any) -> dict:
    """Run the family study; write ``family.json``, ``family.md`` and ``family_map.{png,svg}``.

    Args:
        out: output folder (created); runs go to ``<out>/family_runs``.
        options: a :class:`FamilyOptions` (default: its defaults).
        **overrides: fields of :class:`FamilyOptions` to change (``None`` values are ignored).

    Returns:
        ``options``, ``rows`` (one per run), ``summary`` (per objective and
        batch, over seeds), ``claims``, ``counts`` (trained / resumed / reused),
        ``figures`` and ``seconds``.

    Examples:
        >>> results = run_family_study(Path("/tmp/family"), dataset="digits", epochs=1,
        ...                            linear_probe="none", progress=False)  # doctest: +SKIP
        >>> sorted(results["claims"])  # doctest: +SKIP
        ['dcl_small_batch', 'supcon_tolerance_vs_contrastive', 'supcon_tolerance_vs_nt_xent']
    """
    options = build_options(FamilyOptions, options, overrides)
    with torch_threads(options.threads if options.workers == 1 else 0):
        return _run(Path(out), options)


def _run(out: Path, options: FamilyOptions) -> dict:
    from ..plots import plot_family_map, save_figure

    out.mkdir(parents=True, exist_ok=True)
    runs = out / "family_runs"
    progress = Progress(STUDY, options.progress)
    plan = planned_runs(options)
    progress(f"{len(plan)} runs on {options.dataset}: {list(options.objectives)} × seeds {list(options.seeds)}")
    rows = []
    configs = [run_config(name, batch, seed, options, runs) for name, batch, seed in plan]
    outcomes = train_all(configs, options.workers, progress)
    for (name, batch, seed), config, (results, status) in zip(plan, configs, outcomes, strict=True):
        rows.append(result_row(name, batch, seed, results, status, Path(config.out)))
        row = rows[-1]
        progress(
            f"[{len(rows)}/{len(plan)}] {name} batch {batch} seed {seed}: accuracy {cell(row['accuracy'], 3)}, "
            f"alignment {cell(row['alignment'], 3)}, uniformity {cell(row['uniformity'], 3)}, "
            f"tolerance {cell(row['tolerance'], 3)} ({status})"
        )
    summary = summarize(rows)
    counts = status_counts(rows)
    results = {
        "options": options_dict(options),
        "rows": rows,
        "summary": summary,
        "claims": claims(summary, options),
        "counts": counts,
    }
    figures = save_figure(plot_family_map(rows), out / "family_map")
    results["figures"] = [str(path) for path in figures]
    results["seconds"] = progress.seconds
    json_path, markdown_path = write_outputs(out, STUDY, results, markdown_report(results))
    progress(f"done: {json_path}, {markdown_path}")
    return results
