"""Arora et al. (2019): latent classes, the unsupervised logistic loss and the mean classifier.

Data model: a latent class c ~ ρ; D_c is a Gaussian around a class mean in
input space. A positive pair is two independent draws from one D_c; a negative
is a draw from a fresh class c⁻ ~ ρ, which collides with c (c⁻ = c) with
probability τ = Σ_c ρ_c².

Claim checked: the unsupervised loss

    L_un(f) = E[ log(1 + exp(f(x)ᵀf(x⁻) − f(x)ᵀf(x⁺))) ]

controls the supervised loss of the *mean classifier* (class c's weights are
μ_c = E_{D_c} f(x)). Arora et al.'s Lemma 4.3 (Jensen over x⁺ and x⁻):

    L_un(f) ≥ (1 − τ) L_sup^μ(f) + τ log 2,

where L_sup^μ is the logistic loss ℓ(v) = log(1 + e^{−v}) of the mean
classifier on the binary task {c⁺, c⁻}, v = f(x)ᵀ(μ_{c⁺} − μ_{c⁻}), averaged over
pairs of distinct classes drawn from ρ, and τ log 2 = τ ℓ(0) is the price of
collisions. So lowering L_un should raise the mean classifier's accuracy. The
study trains small MLP encoders (:class:`aligniform.models.mlp.MLPEncoder`) with
L_un (:func:`aligniform.losses.arora_logistic_loss`) on data of the latent-class
model (:class:`aligniform.data.synthetic.LatentClassModel`) with
several numbers of classes (hence several τ), evaluates the mean classifier
(:func:`aligniform.metrics.mean_classifier_evaluation`) at checkpoints on
held-out data, and reports Spearman correlations between L_un and the mean
classifier's accuracy and supervised losses, plus whether the bound holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.synthetic import LatentClassModel
from ..losses import arora_logistic_loss
from ..metrics import mean_classifier_evaluation
from ..models.mlp import MLPEncoder
from ..plots import plot_latent_classes, save_figure
from ..stats import spearman
from .common import Progress, build_options, cell, markdown_table, options_dict, torch_threads, write_outputs

STUDY = "latent-classes"
LOG_2 = math.log(2.0)


@dataclass
class LatentClassesOptions:
    """Options of the latent-class study; the defaults run in well under a minute on 2 CPU cores.

    Attributes:
        num_classes: one setting per value (uniform ρ, so τ = 1/K). Scale up: (2, 4, 8, 16, 32, 64, 128).
        dim: input dimension of the data.
        within_class_spread: s, within- to between-class spread per coordinate.
        steps: training steps per setting. Scale up: 3000.
        eval_every: steps between checkpoints (step 0 is always evaluated).
        batch_size: triples (x, x⁺, x⁻) per step, fresh from the model each step.
        lr: Adam learning rate.
        hidden: width of the MLP's two hidden layers.
        out_dim: dimension of the L2-normalised representation.
        eval_triples: held-out triples on which L_un is measured. Scale up: 50000.
        labelled: labelled samples for the class means, and as many for testing.
        seed: seed of the data models, the held-out sets and the encoders.
        threads: torch intra-op threads while the study runs (0: leave torch's
            setting); 1 is fastest for these small matrices.
        progress: print progress lines.
    """

    num_classes: tuple[int, ...] = (2, 4, 8, 16, 32)
    dim: int = 32
    within_class_spread: float = 2.0
    steps: int = 500
    eval_every: int = 25
    batch_size: int = 256
    lr: float = 1e-3
    hidden: int = 128
    out_dim: int = 16
    eval_triples: int = 4000
    labelled: int = 2000
    seed: int = 0
    threads: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        self.num_classes = tuple(int(k) for k in self.num_classes)
        if not self.num_classes or min(self.num_classes) < 2:
            raise ValueError(f"num_classes must be numbers >= 2, got {self.num_classes}")
        for name in ("steps", "eval_every", "batch_size", "hidden", "out_dim", "eval_triples", "labelled", "dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.labelled < 2 * max(self.num_classes):
            raise ValueError(f"labelled ({self.labelled}) must give every class a few samples (>= 2 per class)")


@dataclass
class HeldOut:
    """Fixed held-out data of one setting: triples for L_un, labelled samples for the mean classifier."""

    anchor: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor
    train_x: torch.Tensor
    train_labels: torch.Tensor
    test_x: torch.Tensor
    test_labels: torch.Tensor

    @classmethod
    def draw(cls, model: LatentClassModel, triples: int, labelled: int) -> HeldOut:
        anchor, positive, _ = model.positive_pairs(triples)
        negative, _ = model.negatives(triples)
        train_x, train_labels = model.labelled_sample(labelled)
        test_x, test_labels = model.sample(labelled)
        return cls(anchor, positive, negative, train_x, train_labels, test_x, test_labels)


@torch.no_grad()
def checkpoint_metrics(encoder: nn.Module, held_out: HeldOut, model: LatentClassModel) -> dict:
    """L_un on the held-out triples and the mean classifier's accuracy and losses on held-out labels."""
    encoder.eval()
    anchor, positive, negative = encoder(held_out.anchor), encoder(held_out.positive), encoder(held_out.negative)
    unsupervised = float(arora_logistic_loss(anchor, positive, negative))
    supervised = mean_classifier_evaluation(
        encoder(held_out.train_x),
        held_out.train_labels,
        encoder(held_out.test_x),
        held_out.test_labels,
        model.class_probs,
    )
    encoder.train()
    tau = model.collision_probability()
    # Lemma 4.3 rearranged: L_sup^μ ≤ (L_un − τ ℓ(0)) / (1 − τ).
    bound = (unsupervised - tau * LOG_2) / (1 - tau)
    return {"unsupervised_loss": unsupervised, **supervised, "sup_bound": bound}


def train_setting(num_classes: int, options: LatentClassesOptions, progress: Progress) -> dict:
    """Train one encoder with L_un on one latent-class model; return its checkpoint records and correlations."""
    model = LatentClassModel(num_classes, options.dim, options.within_class_spread, seed=options.seed)
    held_out = HeldOut.draw(model, options.eval_triples, options.labelled)
    torch.manual_seed(options.seed)
    encoder = MLPEncoder(options.dim, options.hidden, options.out_dim)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=options.lr)
    records = [{"step": 0, **checkpoint_metrics(encoder, held_out, model)}]
    for step in range(1, options.steps + 1):
        anchor, positive, _ = model.positive_pairs(options.batch_size)
        negative, _ = model.negatives(options.batch_size)
        loss = arora_logistic_loss(encoder(anchor), encoder(positive), encoder(negative))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % options.eval_every == 0 or step == options.steps:
            records.append({"step": step, "train_loss": loss.item(), **checkpoint_metrics(encoder, held_out, model)})
    tau = model.collision_probability()
    column = lambda key: [r[key] for r in records]  # noqa: E731
    result = {
        "num_classes": num_classes,
        "collision_probability": tau,
        "records": records,
        "spearman_unsup_vs_accuracy": spearman(column("unsupervised_loss"), column("accuracy")),
        "spearman_unsup_vs_binary_loss": spearman(column("unsupervised_loss"), column("binary_loss")),
        "spearman_unsup_vs_multiclass_loss": spearman(column("unsupervised_loss"), column("multiclass_loss")),
        # With estimated class means Jensen holds only up to sampling noise: allow 0.01.
        "bound_holds": all(r["binary_loss"] <= r["sup_bound"] + 0.01 for r in records),
    }
    first, last = records[0], records[-1]
    progress(
        f"K={num_classes} (τ={tau:.3f}): L_un {first['unsupervised_loss']:.4f} → {last['unsupervised_loss']:.4f}, "
        f"mean-classifier accuracy {first['accuracy']:.3f} → {last['accuracy']:.3f}, "
        f"Spearman(L_un, acc) {result['spearman_unsup_vs_accuracy']:+.2f}, bound holds: {result['bound_holds']}"
    )
    return result


def pooled_correlations(settings: list[dict]) -> dict:
    """Spearman correlations over every checkpoint of every setting.

    Across settings the raw L_un is not comparable (its floor τ log 2 grows with
    the collision probability τ), so the pooled correlation is also reported for
    Arora's bound (L_un − τ log 2)/(1 − τ), which removes the collision term.
    """
    records = [r for setting in settings for r in setting["records"]]
    column = lambda key: [r[key] for r in records]  # noqa: E731
    within = [s["spearman_unsup_vs_accuracy"] for s in settings if not math.isnan(s["spearman_unsup_vs_accuracy"])]
    return {
        "checkpoints": len(records),
        "median_within_setting_unsup_vs_accuracy": float(np.median(within)) if within else math.nan,
        "unsup_vs_accuracy": spearman(column("unsupervised_loss"), column("accuracy")),
        "bound_vs_accuracy": spearman(column("sup_bound"), column("accuracy")),
        "bound_vs_binary_loss": spearman(column("sup_bound"), column("binary_loss")),
        "unsup_vs_binary_loss": spearman(column("unsupervised_loss"), column("binary_loss")),
    }


def markdown_report(results: dict) -> str:
    """The study's tables: per setting (first → last checkpoint), then the pooled correlations."""
    options, pooled = results["options"], results["pooled"]
    lines = [
        "# Latent classes (Arora et al. 2019): the mean classifier follows the unsupervised loss",
        "",
        f"Gaussian latent classes in R^{options['dim']} (within-class spread {options['within_class_spread']:g}); "
        f"an MLP encoder (L2-normalised, {options['out_dim']}-d) trained {options['steps']} steps with "
        "L_un = E log(1 + exp(f(x)ᵀf(x⁻) − f(x)ᵀf(x⁺))). Held-out L_un, mean-classifier accuracy, its K-way "
        "cross-entropy and Arora's binary L_sup^μ at each checkpoint. Lemma 4.3: "
        "L_sup^μ ≤ (L_un − τ log 2)/(1 − τ) with τ = P(class collision).",
        "",
        "## Per setting (first → last checkpoint)",
        "",
    ]
    rows = []
    for s in results["settings"]:
        first, last = s["records"][0], s["records"][-1]
        rows.append(
            [
                s["num_classes"],
                f"{s['collision_probability']:.4f}",
                f"{first['unsupervised_loss']:.4f} → {last['unsupervised_loss']:.4f}",
                f"{first['accuracy']:.3f} → {last['accuracy']:.3f}",
                f"{last['multiclass_loss']:.4f}",
                f"{last['binary_loss']:.4f}",
                f"{last['sup_bound']:.4f}",
                cell(s["spearman_unsup_vs_accuracy"], 2),
                cell(s["spearman_unsup_vs_binary_loss"], 2),
                s["bound_holds"],
            ]
        )
    lines.append(
        markdown_table(
            [
                "K",
                "τ",
                "L_un",
                "mean-cls accuracy",
                "K-way CE",
                "L_sup^μ",
                "bound",
                "ρ(L_un, acc)",
                "ρ(L_un, L_sup^μ)",
                "bound holds",
            ],
            rows,
        )
    )
    lines += [
        "",
        "## Spearman correlations over all checkpoints",
        "",
        markdown_table(
            ["pair", "Spearman ρ", "expected sign"],
            [
                [
                    "L_un vs accuracy, median within a setting",
                    cell(pooled["median_within_setting_unsup_vs_accuracy"], 3),
                    "−",
                ],
                ["L_un vs accuracy, pooled", cell(pooled["unsup_vs_accuracy"], 3), "− (τ differs across settings)"],
                ["bound vs accuracy, pooled", cell(pooled["bound_vs_accuracy"], 3), "−"],
                ["L_un vs L_sup^μ, pooled", cell(pooled["unsup_vs_binary_loss"], 3), "+"],
                ["bound vs L_sup^μ, pooled", cell(pooled["bound_vs_binary_loss"], 3), "+"],
            ],
        ),
        "",
        f"{pooled['checkpoints']} checkpoints; run time {results['seconds']:.1f} s.",
    ]
    return "\n".join(lines) + "\n"


def run_latent_classes_study(out: str | Path, options: LatentClassesOptions | None = None, **overrides: Any) -> dict:
    """Run the latent-class study; write ``latent-classes.json``, ``latent-classes.md`` and a figure into ``out``.

    Args:
        out: output folder (created).
        options: a :class:`LatentClassesOptions` (default: its defaults).
        **overrides: fields of :class:`LatentClassesOptions` to change (``None`` values are ignored).

    Returns:
        ``options``, ``settings`` (per number of classes: checkpoint records and
        correlations), ``pooled`` correlations, ``figures`` and ``seconds``.

    Examples:
        >>> results = run_latent_classes_study(Path("/tmp/lc"), num_classes=(4,), steps=50,
        ...                                    progress=False)  # doctest: +SKIP
        >>> results["settings"][0]["spearman_unsup_vs_accuracy"] < 0  # doctest: +SKIP
        True
    """
    options = build_options(LatentClassesOptions, options, overrides)
    with torch_threads(options.threads):
        return _run(Path(out), options)


def _run(out: Path, options: LatentClassesOptions) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(STUDY, options.progress)
    progress(f"{len(options.num_classes)} settings (K = {list(options.num_classes)}), {options.steps} steps each")
    settings = [train_setting(k, options, progress) for k in options.num_classes]
    pooled = pooled_correlations(settings)
    progress(
        f"Spearman(L_un, accuracy): median within settings {pooled['median_within_setting_unsup_vs_accuracy']:+.3f}, "
        f"pooled {pooled['unsup_vs_accuracy']:+.3f}; "
        f"Spearman(bound, accuracy) pooled {pooled['bound_vs_accuracy']:+.3f}"
    )
    results = {"options": options_dict(options), "settings": settings, "pooled": pooled}
    figures = save_figure(plot_latent_classes(settings), out / "latent_classes")
    results["figures"] = [str(path) for path in figures]
    results["seconds"] = progress.seconds
    json_path, markdown_path = write_outputs(out, STUDY, results, markdown_report(results))
    progress(f"done: {json_path}, {markdown_path}")
    return results
