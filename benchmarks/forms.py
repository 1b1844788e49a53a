"""Every loss the benchmarks time, beside its plain (dense) form and the floor of work it must do.

The plain forms are not written again here: they are the ones ``bench_losses.py`` and
``bench_family_losses.py`` already use (the usual dense PyTorch forms, and the float64
references of those scripts, which with one chunk of rows are the dense matrix forms). Only
``simple`` and ``align`` are new, since no script timed them before; both are a few lines.

The floor of a loss, in N x N x d GEMM-equivalents (``floor_gemms + floor_exp_passes * t_exp / t_gemm``):

* ``floor_gemms``: the similarities the loss must form, each distinct pair once forward (one GEMM per
  N² pairs), and the two products that give the features' gradients backward (two GEMMs per N² pairs;
  for the pairs within one set, a triangle of N²/2 pairs forward, the symmetric weights times the set
  backward is one full GEMM). So a cross block x·y costs 3, a triangle x·x costs 1.5, and the SimCLR-style
  losses over the 2N views (x·y plus the x·x and y·y triangles) cost 6.
* ``floor_exp_passes``: element-wise exponentials over N² elements, one per distinct pair evaluated forward
  (backward reuses them); sigmoid's softplus counts two (exp and log1p).
* ``t_exp / t_gemm``: one ``torch.exp`` over an N x N float32 matrix, timed in the same rounds as the GEMM.

Top-k selection (hard_contrastive) and O(N·d) work are not counted. ``simple`` (by linearity,
``Σ_{j≠i} x_iᵀy_j = x_iᵀΣ_j y_j - x_iᵀy_i``) and ``align`` have a floor of 0: they need no N x N work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

import aligniform as af
from bench_family_losses import chunked_loss as family_chunked_loss
from bench_family_losses import inputs
from bench_family_losses import loss_function as family_loss
from bench_losses import TAU, chunked_loss, lightly_nt_xent, plain_contrastive, plain_uniform

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
SIMPLE_LAMBDA, HARD_ALPHA = 0.01, 0.08  # HARD_ALPHA: the alpha bench_losses.chunked_loss("hard") is written for


@dataclass(frozen=True)
class LossForm:
    """One loss: its call through the public API, its plain form, and its floor (see the module's docstring)."""

    ours: Loss
    plain: Loss
    floor_gemms: float
    floor_exp_passes: float


def plain_simple(x: torch.Tensor, y: torch.Tensor, lam: float = SIMPLE_LAMBDA) -> torch.Tensor:
    """Simple loss written densely: the N x N similarities, each anchor's row (or column) sum minus its positive."""
    similarities = x @ y.T
    positive = similarities.diagonal()
    rows = lam * (similarities.sum(1) - positive) - positive
    columns = lam * (similarities.sum(0) - positive) - positive
    return torch.cat([rows, columns]).mean()


def plain_align(x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    return (x - y).norm(dim=1).pow(alpha).mean()


def _family(name: str, rows_per_chunk: int) -> LossForm:
    """A bench_family_losses loss; its plain form is that script's reference with every row in one chunk."""
    gemms, exps = (3.0, 2.0) if name == "sigmoid" else (6.0, 2.0)
    return LossForm(
        ours=lambda x, y, labels: family_loss(name, labels)(x, y),
        plain=lambda x, y, labels: family_chunked_loss(name, x, y, labels, chunk=rows_per_chunk * x.shape[0]),
        floor_gemms=gemms,
        floor_exp_passes=exps,
    )


LOSSES: dict[str, LossForm] = {
    "contrastive": LossForm(
        lambda x, y, _: af.contrastive_loss(x, y, TAU), lambda x, y, _: plain_contrastive(x, y), 3.0, 1.0
    ),
    "uniform": LossForm(lambda x, y, _: af.uniform_loss(x, 2.0), lambda x, y, _: plain_uniform(x), 1.5, 0.5),
    "nt_xent": LossForm(lambda x, y, _: af.nt_xent_loss(x, y, TAU), lambda x, y, _: lightly_nt_xent(x, y), 6.0, 2.0),
    "hard_contrastive": LossForm(
        lambda x, y, _: af.hard_contrastive_loss(x, y, TAU, HARD_ALPHA),
        lambda x, y, _: chunked_loss("hard", x, y, chunk=x.shape[0]),
        3.0,
        1.0,
    ),
    "supervised_contrastive": _family("supcon", 2),
    "decoupled": _family("decoupled", 2),
    "debiased": _family("debiased", 2),
    "sigmoid": _family("sigmoid", 1),
    "asymptotic": LossForm(
        lambda x, y, _: af.asymptotic_contrastive_loss(x, y, TAU),
        lambda x, y, _: chunked_loss("asymptotic", x, y, chunk=x.shape[0]),
        3.0,
        1.0,
    ),
    "simple": LossForm(lambda x, y, _: af.simple_loss(x, y, SIMPLE_LAMBDA), lambda x, y, _: plain_simple(x, y), 0, 0),
    "align": LossForm(lambda x, y, _: af.align_loss(x, y, 2.0), lambda x, y, _: plain_align(x, y), 0, 0),
}


def batch(n: int, d: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unit vectors x, y (y near x) and 10-class labels, as bench_family_losses.py draws them."""
    return inputs(n, d, device)


def forward_backward(loss: Loss, x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    """One forward + backward of ``loss`` on fresh leaves (float32 unless x is another dtype)."""

    def step() -> None:
        a, b = x.detach().requires_grad_(), y.detach().requires_grad_()
        loss(a, b, labels).backward()

    return step
