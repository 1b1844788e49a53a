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
study trains small MLP encoders (L2-normalised outputs) with L_un on data of
several numbers of classes (hence several τ), evaluates at checkpoints on
held-out data, and reports Spearman correlations between L_un and the mean
classifier's accuracy and supervised losses, plus whether the bound holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .common import (
    Progress,
    build_options,
    cell,
    markdown_table,
    new_figure,
    options_dict,
    save_figure,
    spearman,
    torch_threads,
    write_json,
)

STUDY = "latent-classes"
LOG_2 = math.log(2.0)


# ---------------------------------------------------------------------------- the data model


class LatentClassModel:
    """Arora et al.'s latent-class data model with Gaussian class distributions in R^dim.

    Class means μ_c ~ N(0, I) (drawn once from ``seed``); D_c = N(μ_c, s² I) with
    s = ``within_class_spread``, so s is the ratio of within-class to
    between-class spread per coordinate (larger is harder). Classes are drawn
    from ρ = ``class_probs`` (uniform by default). Every sampling call advances
    the model's own seeded generator, so a model replays the same stream.

    Args:
        num_classes: number of latent classes (>= 2).
        dim: input dimension.
        within_class_spread: standard deviation s of D_c around its mean.
        class_probs: ρ, non-negative weights (normalised here); uniform if None.
        seed: seed of the class means and of the sampling stream.

    Examples:
        >>> model = LatentClassModel(4, dim=8, within_class_spread=0.5, seed=0)
        >>> x, x_pos, labels = model.positive_pairs(5)
        >>> x.shape, model.collision_probability()
        (torch.Size([5, 8]), 0.25)
    """

    def __init__(self, num_classes: int, dim: int, within_class_spread: float, class_probs=None, seed: int = 0):
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if int(dim) < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if not within_class_spread >= 0:
            raise ValueError(f"within_class_spread must be >= 0, got {within_class_spread}")
        self.num_classes, self.dim, self.spread = int(num_classes), int(dim), float(within_class_spread)
        self.class_probs = self._probabilities(class_probs)
        means_generator = torch.Generator().manual_seed(seed)
        self.class_means = torch.randn(self.num_classes, self.dim, generator=means_generator)
        self.generator = torch.Generator().manual_seed(seed + 1)

    def _probabilities(self, class_probs) -> torch.Tensor:
        if class_probs is None:
            return torch.full((self.num_classes,), 1.0 / self.num_classes, dtype=torch.float64)
        probs = torch.as_tensor(class_probs, dtype=torch.float64).flatten()
        if probs.numel() != self.num_classes or bool((probs < 0).any()) or float(probs.sum()) <= 0:
            raise ValueError(f"class_probs must be {self.num_classes} non-negative weights with a positive sum")
        return probs / probs.sum()

    def collision_probability(self) -> float:
        """τ = P(c⁺ = c⁻) = Σ_c ρ_c²: how often a negative comes from the anchor's own class."""
        return float((self.class_probs**2).sum())

    def draw_classes(self, n: int) -> torch.Tensor:
        """N class labels drawn independently from ρ."""
        return torch.multinomial(self.class_probs, n, replacement=True, generator=self.generator)

    def draw_from_classes(self, labels: torch.Tensor) -> torch.Tensor:
        """One draw from D_c for each label c: μ_c + s·g."""
        noise = torch.randn(len(labels), self.dim, generator=self.generator)
        return self.class_means[labels] + self.spread * noise

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """N labelled samples: c ~ ρ, x ~ D_c. Returns ``(x, labels)``."""
        labels = self.draw_classes(n)
        return self.draw_from_classes(labels), labels

    def positive_pairs(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """N positive pairs: c ~ ρ, then x and x⁺ drawn independently from D_c. Returns ``(x, x_pos, labels)``."""
        labels = self.draw_classes(n)
        return self.draw_from_classes(labels), self.draw_from_classes(labels), labels

    def negatives(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """N negatives: a fresh class c⁻ ~ ρ each (so it collides with an anchor's class with prob. τ)."""
        return self.sample(n)


# ---------------------------------------------------------------------------- losses


def arora_logistic_loss(anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Arora et al.'s unsupervised logistic loss, mean over the batch.

    ``L_un = mean_i log(1 + Σ_k exp(f(x_i)ᵀf(x⁻_ik) − f(x_i)ᵀf(x⁺_i)))``; with one
    negative per anchor ((n, d) ``negatives``) it is the paper's
    ``log(1 + exp(f(x)ᵀf(x⁻) − f(x)ᵀf(x⁺)))``, with (n, k, d) negatives the
    k-negative version. Computed as a log-sum-exp with a 0 logit (stable).

    Examples:
        >>> import torch
        >>> z = torch.eye(2)
        >>> round(float(arora_logistic_loss(z[:1], z[:1], z[1:])), 4)  # log(1 + e^{0 - 1})
        0.3133
    """
    if negatives.ndim == 2:
        negatives = negatives[:, None, :]
    positive_score = (anchor * positive).sum(-1, keepdim=True)
    margins = torch.einsum("nd,nkd->nk", anchor, negatives) - positive_score
    logits = torch.cat([torch.zeros_like(margins[:, :1]), margins], 1)
    return torch.logsumexp(logits, 1).mean()


@torch.no_grad()
def mean_classifier_evaluation(train_z, train_labels, test_z, test_labels, class_probs: torch.Tensor) -> dict:
    """Accuracy and supervised losses of the mean classifier μ_c = mean f(x) over class c's training samples.

    * ``accuracy``: argmax_c μ_cᵀf(x) on the test set (as
      :func:`aligniform.metrics.mean_classifier_accuracy`);
    * ``multiclass_loss``: cross-entropy of the logits μ_cᵀf(x), the K-way
      logistic loss log(1 + Σ_{c'≠c} exp(μ_{c'}ᵀf − μ_cᵀf));
    * ``binary_loss``: Arora et al.'s L_sup^μ: ℓ(f(x)ᵀ(μ_c − μ_{c'})) with
      ℓ(v) = log(1 + e^{−v}), averaged over pairs of distinct classes (c, c')
      drawn from ρ. With test samples drawn from ρ, sample x of class c gets the
      weight Σ_{c'≠c} ρ_{c'} ℓ(...) / (1 − τ).

    Examples:
        >>> import torch
        >>> z, labels = torch.eye(2), torch.tensor([0, 1])
        >>> mean_classifier_evaluation(z, labels, z, labels, torch.tensor([0.5, 0.5]))["accuracy"]
        1.0
    """
    classes = torch.arange(len(class_probs))
    means = torch.stack([train_z[train_labels == c].mean(0) for c in classes])
    logits = test_z @ means.T
    own = logits.gather(1, test_labels[:, None])
    pairwise = F.softplus(-(own - logits))  # ℓ(v_c − v_c') for every c'; the c' = c entry is ℓ(0)
    weights = class_probs.to(logits.dtype)[None, :].expand_as(logits).clone()
    weights.scatter_(1, test_labels[:, None], 0.0)  # only c' ≠ c
    collision = float((class_probs**2).sum())
    return {
        "accuracy": float((logits.argmax(1) == test_labels).double().mean()),
        "multiclass_loss": float(F.cross_entropy(logits, test_labels)),
        "binary_loss": float((pairwise * weights).sum(1).mean() / (1 - collision)),
    }


# ---------------------------------------------------------------------------- the study


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

    def __post_init__(self):
        self.num_classes = tuple(int(k) for k in self.num_classes)
        if not self.num_classes or min(self.num_classes) < 2:
            raise ValueError(f"num_classes must be numbers >= 2, got {self.num_classes}")
        for name in ("steps", "eval_every", "batch_size", "hidden", "out_dim", "eval_triples", "labelled", "dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.labelled < 2 * max(self.num_classes):
            raise ValueError(f"labelled ({self.labelled}) must give every class a few samples (>= 2 per class)")


class MLPEncoder(nn.Module):
    """Two hidden ReLU layers, then L2 normalisation onto S^{out_dim − 1}.

    Examples:
        >>> encoder = MLPEncoder(8, hidden=16, out_dim=4)
        >>> encoder(torch.randn(3, 8)).norm(dim=1).allclose(torch.ones(3))
        True
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.layers(x), dim=1)


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
        train_x, train_labels = _labelled_sample(model, labelled)
        test_x, test_labels = model.sample(labelled)
        return cls(anchor, positive, negative, train_x, train_labels, test_x, test_labels)


def _labelled_sample(model: LatentClassModel, n: int):
    """N samples from ρ, redrawn until every class has a sample (a class mean must exist)."""
    for _ in range(100):
        x, labels = model.sample(n)
        if len(torch.unique(labels)) == model.num_classes:
            return x, labels
    raise ValueError(f"{n} labelled samples do not cover all {model.num_classes} classes; raise 'labelled'")


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


def plot_latent_classes(settings: list[dict], stem: Path) -> list[str]:
    """Left: accuracy against L_un over training; right: L_sup^μ against Arora's bound (must lie below y = x)."""
    figure = new_figure(11.0, 4.0)
    accuracy_axes, bound_axes = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for index, setting in enumerate(settings):
        records = setting["records"]
        label = f"K = {setting['num_classes']} (τ = {setting['collision_probability']:.3g})"
        color = f"C{index % 10}"
        accuracy_axes.plot(
            [r["unsupervised_loss"] for r in records],
            [r["accuracy"] for r in records],
            "o-",
            color=color,
            markersize=3,
            label=label,
        )
        accuracy_axes.plot(records[0]["unsupervised_loss"], records[0]["accuracy"], "x", color=color, markersize=8)
        bound_axes.plot(
            [r["sup_bound"] for r in records],
            [r["binary_loss"] for r in records],
            "o-",
            color=color,
            markersize=3,
            label=label,
        )
    accuracy_axes.set_xlabel("unsupervised loss L_un (held out)")
    accuracy_axes.set_ylabel("mean-classifier accuracy (held out)")
    accuracy_axes.set_title("accuracy follows L_un (× = initialisation)", fontsize=10)
    limits = [
        min(r["binary_loss"] for s in settings for r in s["records"]),
        max(r["sup_bound"] for s in settings for r in s["records"]),
    ]
    bound_axes.plot(limits, limits, "k--", linewidth=1, label="L_sup^μ = bound")
    bound_axes.set_xlabel("Arora's bound (L_un − τ log 2) / (1 − τ)")
    bound_axes.set_ylabel("mean classifier's L_sup^μ (binary tasks)")
    bound_axes.set_title("Lemma 4.3: points lie below the diagonal", fontsize=10)
    for axes in (accuracy_axes, bound_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    return save_figure(figure, stem)


def markdown_report(results: dict) -> str:
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


def run_latent_classes_study(out: Path, options: LatentClassesOptions | None = None, **overrides) -> dict:
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
    results["figures"] = plot_latent_classes(settings, out / "latent_classes")
    results["seconds"] = progress.seconds
    write_json(out / f"{STUDY}.json", results)
    (out / f"{STUDY}.md").write_text(markdown_report(results))
    progress(f"done: {out / (STUDY + '.json')}, {out / (STUDY + '.md')}")
    return results
