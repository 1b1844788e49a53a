"""Numerical check of Wang & Isola's (2020) Theorem 1: L_contrastive − log M converges as M → ∞.

For a fixed encoder f, the symmetric in-batch contrastive loss with M negatives
per anchor satisfies (Theorem 1)

    L_contrastive(f; τ, M) − log M  →  −(1/τ) E_pos[f(x)ᵀf(y)] + E_x[ log E_{x⁻}[exp(f(x)ᵀf(x⁻)/τ)] ],

the quantity :func:`aligniform.asymptotic_contrastive_loss` estimates. This
study measures the left side for M = 1, 2, 4, ... on batches of M + 1 positive
pairs drawn from a fixed *population* of pairs, and the right side on the whole
population, for two kinds of features: (a) a synthetic mixture on S^{d−1} and
(b) a fixed convnet on augmented mnist5k test images.

Like with like. In a batch of M + 1 pairs, :func:`aligniform.contrastive_loss`
gives anchor x_i the positive y_i and the negatives y_j (j ≠ i), i.e. second
views of other samples, and symmetrically for anchors y_i. The limit is
computed with exactly that pairing (as :func:`aligniform.asymptotic_contrastive_loss`
does): per anchor x_i, ``−x_iᵀy_i/τ + log mean_{j≠i} exp(x_iᵀy_j/τ)`` with j
over the whole population, averaged with the same term for anchors y_i against
x_j. The mean of these per-anchor terms over the population *is*
``asymptotic_contrastive_loss(population)``; :func:`anchor_limit_terms` takes them from the loss itself.

Variance reduction. Each batch's gap is measured against the per-anchor limit
terms of the batch's own anchors: ``(L_batch − log M) − mean_batch(limit terms)``.
The alignment part −x_iᵀy_i/τ cancels exactly, so what remains is only
``log((e^{s_ii/τ} + Σ_neg e^{s_ij/τ}) / M) − log E[e^{s/τ}]``: the finite-M
effect (the positive in the denominator, and Jensen's gap of a log of a mean of
M terms), both O(1/M). Its expectation equals E[L_batch − log M] − limit, with
far less noise than subtracting two independently noisy numbers.

The population plays the role of p_data: the limit computed on it is exact for
that (empirical) distribution, and batches are draws from it. Because a batch is
drawn without replacement, the Jensen part of the gap carries the
finite-population factor (1 − M/(N − 1)) and would vanish at M = N − 1, so M is
kept small against N: the defaults use M ≤ N / 8 (N = 8,192 synthetic pairs
against M ≤ 1,024; for the encoder, N = 8 × 1,000 augmented pairs and M values
above N / 8 are dropped), and the options refuse batches above N / 4. Features
are float32 (the gaps of interest, ~1e-3, are far above its rounding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ..config import TrainConfig
from ..data.synthetic import mixture_positive_pairs
from ..errors import OptionError
from ..losses import contrastive_loss
from ..losses.candidates import softmax_terms
from ..plots import plot_theorem1, plot_theorem1_gaps, save_figure
from ..stats import log_log_slope
from .common import Progress, build_options, markdown_table, options_dict, torch_threads, write_outputs
from .runs import train_or_reuse

STUDY = "theorem1"
ENCODER_CHOICES = ("train", "random", "none")


@dataclass
class Theorem1Options:
    """Options of the Theorem 1 study; the defaults run in about a minute on 2 CPU cores.

    Attributes:
        taus: temperatures τ checked.
        negatives: the numbers of negatives M (a batch holds M + 1 pairs).
            Scale up: add 2048, 4096 with ``population`` >= 32768.
        repeats: batches drawn per M; mean ± std over them. Scale up: 128.
        population: synthetic positive pairs the limit is estimated on.
        dim: dimension d of the synthetic features on S^{d−1}.
        components: mixture components of the synthetic features.
        spread: spread of samples around their component centre (noise of norm ≈ spread).
        view_noise: noise (norm ≈ view_noise) that turns a latent point into its two views.
        encoder: part (b)'s encoder: ``"train"`` (a convnet trained for
            ``encoder_epochs`` on the dataset's training split, reused from
            ``<out>/theorem1_encoder`` when present), ``"random"`` (freshly
            initialised), a path to a ``checkpoint.pt`` (its own dataset is then
            used), or ``"none"`` (skip part b).
        encoder_epochs: epochs of the quickly trained encoder. Scale up: 20.
        encoder_objective: objective that encoder is trained with.
        dataset: dataset of part (b): its test images are the population.
        views_per_image: augmented positive pairs drawn per test image.
        seed: seed of every random draw.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (only for the encoder).
        threads: torch intra-op threads while the study runs (0: leave torch's
            setting). 1 is fastest on small shared CPUs; on a free many-core
            machine or a GPU pass 0.
        progress: print progress lines.
    """

    taus: tuple[float, ...] = (0.2, 0.5, 1.0)
    negatives: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
    repeats: int = 32
    population: int = 8192
    dim: int = 32
    components: int = 10
    spread: float = 0.6
    view_noise: float = 0.3
    encoder: str = "train"
    encoder_epochs: int = 2
    encoder_objective: str = "contrastive(tau=0.5)"
    dataset: str = "mnist5k"
    views_per_image: int = 8
    seed: int = 0
    device: str = "auto"
    threads: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        self.taus = tuple(float(t) for t in self.taus)
        self.negatives = tuple(sorted({int(m) for m in self.negatives}))
        if not self.taus or min(self.taus) <= 0:
            raise OptionError(f"`taus` must be positive temperatures, got {self.taus}")
        if not self.negatives or self.negatives[0] < 1:
            raise OptionError(f"`negatives` must be numbers M >= 1, got {self.negatives}")
        for name in ("spread", "view_noise"):  # noise scales: a negative one is a typo, not a scale
            if getattr(self, name) < 0:
                raise OptionError(f"`{name}` must be >= 0, got {getattr(self, name)!r}")
        if self.repeats < 2:
            raise OptionError(f"`repeats` must be >= 2 (a std needs two batches), got {self.repeats}")
        if self.population < 4 * (self.negatives[-1] + 1):
            raise OptionError(
                f"`population` ({self.population}) must be at least four times the largest batch "
                f"({self.negatives[-1] + 1} pairs): the limit needs a much larger sample than one batch"
            )


# ---------------------------------------------------------------------------- the limit


def anchor_limit_terms(x: torch.Tensor, y: torch.Tensor, taus: Sequence[float]) -> dict[float, torch.Tensor]:
    """Per-anchor terms of Theorem 1's limit on a population, for every τ; O(N × block) memory.

    For anchor x_i: ``−x_iᵀy_i/τ + log mean_{j≠i} exp(x_iᵀy_j/τ)``; for anchor
    y_i the same with x and y swapped. These are the terms whose mean is
    ``asymptotic_contrastive_loss(x, y, τ)``, computed by the loss's own tiled
    pass, so N = 65,536 fits in memory. The arithmetic runs in the features'
    dtype (float32 is ~5× faster than float64 on CPU).

    Returns:
        τ -> (2, N) float64 tensor: row 0 the x anchors, row 1 the y anchors.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import asymptotic_contrastive_loss
        >>> x, y = F.normalize(torch.randn(2, 50, 4, dtype=torch.float64), dim=-1)
        >>> terms = anchor_limit_terms(x, y, [0.5])[0.5]
        >>> torch.allclose(terms.mean(), asymptotic_contrastive_loss(x, y, 0.5))
        True
    """
    return {tau: stats["limit"] for tau, stats in anchor_statistics(x, y, taus).items()}


def _asymptotic_terms(x: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """Per anchor, ``log Σ_{j≠i} e^{s_ij/τ} − s_ii/τ`` as (2, N) float64: the terms of the asymptotic loss.

    :func:`aligniform.asymptotic_contrastive_loss` is their mean minus log(N − 1); the study needs each
    anchor's own term (a batch's gap is measured against its anchors'), so it takes them before the mean.
    """
    terms = softmax_terms(x, y, None, tau, symmetric=True, batch_negatives=True, positive_in_denominator=False)
    return terms.double().reshape(2, x.shape[0])


@torch.no_grad()
def anchor_statistics(x: torch.Tensor, y: torch.Tensor, taus: Sequence[float]) -> dict[float, dict[str, torch.Tensor]]:
    """Per-anchor limit terms and first-order gap coefficients of a population, for every τ.

    With e_j = exp(s_ij/τ) over anchor i's negatives, μ_i = mean e_j and
    v_i = Var(e_j)/μ_i², a second-order expansion of
    ``E log((e^{s_ii/τ} + Σ_{j≤M} e_j)/M) − log μ_i`` gives the gap

        gap_i(M) = c_i / M + O(1/M²),   c_i = e^{s_ii/τ}/μ_i − v_i/2:

    the positive that :func:`aligniform.contrastive_loss` keeps in its
    denominator (first term, > 0) and Jensen's gap of a log of a mean of M
    terms (second, < 0). Both come from the asymptotic loss's per-anchor terms
    A_i = log Σ_j e_j − s_ii/τ at τ and B_i at τ/2 (log Σ_j e_j² − 2 s_ii/τ):
    with L = log(N − 1), e^{s_ii/τ}/μ_i = e^{L − A_i} and 1 + v_i = e^{B_i − 2A_i + L}.
    Everything stays in log-sum-exps, so small τ cannot overflow.

    Returns:
        τ -> {"limit": (2, N), "coefficient": (2, N)} float64 tensors (row 0: x anchors, row 1: y anchors).
    """
    log_negatives = math.log(x.shape[0] - 1)
    stats = {}
    for tau in taus:
        terms = _asymptotic_terms(x, y, float(tau))
        square_terms = _asymptotic_terms(x, y, float(tau) / 2)
        relative_variance = torch.expm1(square_terms - 2 * terms + log_negatives)
        stats[float(tau)] = {
            "limit": terms - log_negatives,
            "coefficient": torch.exp(log_negatives - terms) - relative_variance / 2,
        }
    return stats


# ---------------------------------------------------------------------------- finite M


def finite_m_curve(
    x: torch.Tensor,
    y: torch.Tensor,
    limit_terms: torch.Tensor,
    tau: float,
    negatives: Sequence[int],
    repeats: int,
    seed: int,
) -> list[dict]:
    """L_contrastive − log M and its gap to the limit, per M, over ``repeats`` random batches.

    Each batch is M + 1 distinct pairs of the population (uniform, without
    replacement). Its gap is measured against the limit terms of its own anchors
    (see the module docstring), whose population mean is the limit.

    Returns:
        One dict per M: ``M``, ``loss_minus_log_m`` (mean) and ``..._std`` over
        batches, ``gap`` (mean), ``gap_std``, ``gap_sem`` (std / √repeats) and ``m_times_gap``.
    """
    generator = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    rows = []
    for m in negatives:
        shifted, gaps = [], []
        for _ in range(repeats):
            batch = torch.randperm(n, generator=generator)[: m + 1]
            value = float(contrastive_loss(x[batch], y[batch], tau)) - math.log(m)
            shifted.append(value)
            gaps.append(value - float(limit_terms[:, batch].mean()))
        shifted, gaps = np.array(shifted), np.array(gaps)
        rows.append(
            {
                "M": m,
                "loss_minus_log_m": float(shifted.mean()),
                "loss_minus_log_m_std": float(shifted.std(ddof=1)),
                "gap": float(gaps.mean()),
                "gap_std": float(gaps.std(ddof=1)),
                "gap_sem": float(gaps.std(ddof=1) / math.sqrt(repeats)),
                "m_times_gap": float(m * gaps.mean()),
            }
        )
    return rows


def convergence_summary(rows: list[dict], limit: float, coefficient: float) -> dict:
    """Checks on one curve: does the gap shrink with M, like c/M, and end small?

    * ``gap_shrinks``: |gap| never grows from one M to the next by more than
      2 standard errors (noise), and the last |gap| is below a tenth of the first;
    * ``slope``: least-squares slope of log|gap| against log M for M >= 8
      (Theorem 1's finite-M corrections are O(1/M): expect about −1);
    * ``predicted_m_times_gap``: c, the population mean of the first-order
      coefficients of :func:`anchor_statistics`; M · gap should approach it;
    * ``final_gap`` / ``final_gap_sem``: the gap at the largest M.
    """
    gaps = [abs(r["gap"]) for r in rows]
    noise = [2 * r["gap_sem"] for r in rows]
    monotone = all(later <= earlier + n1 + n2 for earlier, later, n1, n2 in zip(gaps, gaps[1:], noise, noise[1:]))
    tail = [r for r in rows if r["M"] >= 8] or rows
    return {
        "limit": limit,
        "gap_shrinks": bool(monotone and gaps[-1] < 0.1 * gaps[0]),
        "slope": log_log_slope([r["M"] for r in tail], [r["gap"] for r in tail]),
        "predicted_m_times_gap": coefficient,
        "final_M": rows[-1]["M"],
        "final_gap": rows[-1]["gap"],
        "final_gap_sem": rows[-1]["gap_sem"],
    }


def convergence_study(
    x: torch.Tensor,
    y: torch.Tensor,
    options: Theorem1Options,
    negatives: Sequence[int],
    progress: Progress,
    label: str,
) -> dict:
    """The limit and finite-M curves of one population of positive pairs, for every τ."""
    progress(f"{label}: limit on the population of {x.shape[0]} pairs (taus {list(options.taus)})")
    statistics = anchor_statistics(x, y, options.taus)
    curves = {}
    for tau in options.taus:
        limit_terms = statistics[tau]["limit"]
        rows = finite_m_curve(x, y, limit_terms, tau, negatives, options.repeats, options.seed)
        summary = convergence_summary(rows, float(limit_terms.mean()), float(statistics[tau]["coefficient"].mean()))
        curves[f"{tau:g}"] = {"tau": tau, "rows": rows, **summary}
        progress(
            f"{label} τ={tau:g}: limit {summary['limit']:.4f}; gap {rows[0]['gap']:+.4f} at M={rows[0]['M']} → "
            f"{summary['final_gap']:+.5f} ± {summary['final_gap_sem']:.5f} at M={summary['final_M']}, "
            f"slope {summary['slope']:.2f}; M·gap {rows[-1]['m_times_gap']:.3f} vs predicted "
            f"{summary['predicted_m_times_gap']:.3f}"
        )
    return {"population": x.shape[0], "negatives": list(negatives), "curves": curves}


# ---------------------------------------------------------------------------- part (b): the encoder


def fixed_encoder(options: Theorem1Options, out: Path, progress: Progress) -> tuple[nn.Module, TrainConfig]:
    """The encoder of part (b) and its training config: trained (or reused), random, or loaded from a checkpoint."""
    from ..data import dataset_info
    from ..models import build_model
    from ..train import run
    from ..train.checkpoint import CheckpointError
    from ..train.restore import load_encoder

    config = TrainConfig(
        dataset=options.dataset,
        model="convnet",
        objective=options.encoder_objective,
        epochs=max(1, options.encoder_epochs),
        seed=options.seed,
        device=options.device,
        out=str(out / "theorem1_encoder"),
        progress=options.progress,
        linear_probe="none",
    )
    if options.encoder == "random":
        info = dataset_info(config.dataset)
        progress(f"encoder: randomly initialised convnet ({info.channels}×{info.image_size}² input)")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            return build_model("convnet", dim=config.dim, in_channels=info.channels, image_size=info.image_size), config
    if options.encoder != "train":
        progress(f"encoder: loaded from {options.encoder}")
        return load_encoder(options.encoder)
    # The one train-or-reuse of the studies: a finished run is read back, an interrupted one resumed. A folder
    # trained before, which holds a checkpoint of its last epoch but no results.json, is resumed: only its final
    # evaluation runs. The encoder is the final checkpoint's, the same weights the training loop ended with.
    checkpoint = Path(config.out) / "checkpoint.pt"
    try:
        train_or_reuse(config, progress)
        return load_encoder(checkpoint)
    except CheckpointError as error:  # e.g. saved by an older version of the model
        progress(f"encoder: cannot reuse {checkpoint} ({str(error).splitlines()[0][:100]}...); training again")
    run(config, overwrite=True)
    return load_encoder(checkpoint)


def _encoder_description(options: Theorem1Options, config: TrainConfig) -> str:
    if options.encoder == "random":
        return "randomly initialised convnet"
    if options.encoder == "train":
        return f"convnet trained {config.epochs} epoch(s) with {config.objective}"
    return f"{config.model} from checkpoint {options.encoder}"


def encoder_population(
    options: Theorem1Options, out: Path, progress: Progress
) -> tuple[torch.Tensor, torch.Tensor, TrainConfig]:
    """Positive pairs of features of the test images under the training augmentation."""
    from ..build import build_transforms
    from ..data import dataset_info, load_dataset
    from ..device import resolve_device
    from ..evaluate.views import embed_view_pairs

    model, config = fixed_encoder(options, out, progress)
    device = resolve_device(options.device)
    test = load_dataset(
        config.dataset, config.data_dir, split=dataset_info(config.dataset).test_split, image_size=config.image_size
    )
    augmentation, _ = build_transforms(config, test)
    progress(f"encoder features: {options.views_per_image} augmented pairs of each of {len(test)} test images")
    x, y = embed_view_pairs(
        model.to(device),
        test.images,
        augmentation.to(device),
        seed=options.seed,
        repeats=options.views_per_image,
        batch_size=500,
        device=device,
    )
    return x, y, config


# ---------------------------------------------------------------------------- output


def markdown_report(results: dict) -> str:
    """The study's tables: one per feature source and τ."""
    lines = [
        "# Theorem 1 (Wang & Isola 2020): L_contrastive − log M → limit as M → ∞",
        "",
        "Batches of M + 1 positive pairs from a fixed population; anchor x_i's negatives are the other pairs' "
        "second views y_j (and symmetrically). The limit is `asymptotic_contrastive_loss` over the whole "
        "population with the same pairing. Gap = mean over batches of (L − log M − the limit terms of the "
        "batch's anchors); ± is one standard error. Expect the gap to shrink like c/M (slope ≈ −1), with "
        "c = mean(e^{s_ii/τ}/μ_i − Var_j(e^{s_ij/τ})/(2μ_i²)) over the population's anchors (μ_i = mean_j e^{s_ij/τ}): "
        "the positive kept in the denominator minus Jensen's gap of log-mean-exp over M negatives.",
    ]
    for source in ("synthetic", "encoder"):
        if source not in results:
            continue
        part = results[source]
        lines += ["", f"## {source} features (population {part['population']} pairs)"]
        if source == "encoder":
            lines += ["", f"Encoder: {part['encoder']}."]
        for curve in part["curves"].values():
            lines += [
                "",
                f"### τ = {curve['tau']:g}: limit {curve['limit']:.4f}, log–log slope of the gap (M ≥ 8) "
                f"{curve['slope']:.2f}, gap shrinks: {'yes' if curve['gap_shrinks'] else 'no'}, "
                f"predicted M · gap → c = {curve['predicted_m_times_gap']:.3f}",
                "",
            ]
            rows = [
                [
                    r["M"],
                    f"{r['loss_minus_log_m']:.4f} ± {r['loss_minus_log_m_std']:.4f}",
                    f"{r['gap']:+.5f} ± {r['gap_sem']:.5f}",
                    f"{r['m_times_gap']:.3f}",
                ]
                for r in curve["rows"]
            ]
            lines.append(markdown_table(["M", "L − log M (mean ± std over batches)", "gap to limit", "M · gap"], rows))
    lines += ["", f"Run time: {results['seconds']:.1f} s."]
    return "\n".join(lines) + "\n"


def run_theorem1_study(out: str | Path, options: Theorem1Options | None = None, **overrides: Any) -> dict:
    """Run the Theorem 1 study; write ``theorem1.json``, ``theorem1.md`` and figures into ``out``.

    Args:
        out: output folder (created).
        options: a :class:`Theorem1Options` (default: its defaults).
        **overrides: fields of :class:`Theorem1Options` to change (``None`` values are ignored).

    Returns:
        The results: ``options``, ``synthetic`` (and ``encoder`` unless
        ``encoder="none"``), each with ``curves`` per τ (rows per M and the
        convergence summary), plus ``figures`` and ``seconds``.

    Examples:
        >>> results = run_theorem1_study(Path("/tmp/t1"), encoder="none", negatives=(1, 4, 16),
        ...                              population=1024, repeats=4, progress=False)  # doctest: +SKIP
        >>> results["synthetic"]["curves"]["0.5"]["gap_shrinks"]  # doctest: +SKIP
        True
    """
    options = build_options(Theorem1Options, options, overrides)
    if options.encoder not in ENCODER_CHOICES and not Path(options.encoder).is_file():
        choices = ", ".join(ENCODER_CHOICES)
        raise OptionError(f"`encoder` must be one of {choices} or a checkpoint file, got {options.encoder!r}")
    with torch_threads(options.threads):
        return _run(Path(out), options)


def _run(out: Path, options: Theorem1Options) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(STUDY, options.progress)
    results: dict = {"options": options_dict(options)}

    x, y = mixture_positive_pairs(
        options.population, options.dim, options.components, options.spread, options.view_noise, options.seed
    )
    results["synthetic"] = convergence_study(x, y, options, options.negatives, progress, "synthetic")

    if options.encoder != "none":
        x, y, config = encoder_population(options, out, progress)
        # Keep batches well below the population, whose own estimate has an O(1/N) bias.
        negatives = [m for m in options.negatives if m + 1 <= x.shape[0] // 8] or [options.negatives[0]]
        results["encoder"] = convergence_study(x, y, options, negatives, progress, "encoder")
        results["encoder"]["encoder"] = (
            f"{_encoder_description(options, config)}; {config.dataset} test images × "
            f"{options.views_per_image} augmented pairs"
        )

    sources = [source for source in ("synthetic", "encoder") if source in results]
    figures: list[Path] = []
    for source in sources:
        figures += save_figure(convergence_figure(results[source]), out / f"theorem1_{source}")
    gaps = plot_theorem1_gaps({source: results[source]["curves"].values() for source in sources})
    figures += save_figure(gaps, out / "theorem1_gap")
    results["figures"] = [str(path) for path in figures]
    results["seconds"] = progress.seconds
    json_path, markdown_path = write_outputs(out, STUDY, results, markdown_report(results))
    progress(f"done: {json_path}, {markdown_path}, {len(figures)} figure files")
    return results


def convergence_figure(source: dict) -> Figure:
    """L − log M against M with the limits of one feature source, via :func:`aligniform.plots.plot_theorem1`."""
    curves = source["curves"].values()
    values = {f"τ = {c['tau']:g}": [r["loss_minus_log_m"] for r in c["rows"]] for c in curves}
    limits = {f"τ = {c['tau']:g}": c["limit"] for c in curves}
    return plot_theorem1(source["negatives"], values, limits, subtract_log_m=False)
