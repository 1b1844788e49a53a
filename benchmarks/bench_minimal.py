"""What bitwise equality costs at small N: our contrastive and uniformity losses against minimal non-bitwise forms.

Usage:
    python benchmarks/bench_minimal.py                     # N = 256, 1 and 2 threads, 15 rounds
    python benchmarks/bench_minimal.py --n 256 1024 --threads 1 --rounds 9

The library's fused one-tile forms (``aligniform.losses.engine.fused``) keep the tiled path's floating-point
operations so that every trained number stays bitwise the same. The two prototypes below do not: each is the
fewest torch operations I could write for the loss (an ``autograd.Function`` with a hand-written backward), exact
in real arithmetic but rounded differently. They are not part of the package; they measure what a non-bitwise
form would gain, for the decision recorded in docs/benchmarks.md (issue 21).

* ``MinimalInfoNCE``: the symmetric in-batch InfoNCE; the positives folded into the weights' diagonal, so
  backward is two GEMMs and three passes over the matrix.
* ``MinimalUniformity``: ``||x_i - x_j||² = s_i + s_j - 2 x_iᵀx_j`` with one d-wide GEMM over the whole matrix
  (the row term added as a broadcast bias, the column term in place), the pairs i < j as half the off-diagonal
  sum; backward is one GEMM plus O(N·d). Any rows, not only unit ones; a fixed t.

Each round times 10 calls of each form (ours with the input checks on, as the public call runs; the plain form of
``forms.py``; the prototype), interleaved, with the steady allocator of ``run.py``; the ratios are medians over the
rounds. Before timing, each prototype's value and gradients are checked against the plain form in float64.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable
from typing import Any

import torch

import aligniform as af
from allocator import steady_allocator
from bench_losses import TAU, pair, plain_contrastive, plain_uniform, timed_samples

UNIFORM_T = 2.0


class MinimalInfoNCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
        anchors = x * (1.0 / tau)
        exp = torch.mm(anchors, y.T).exp_()  # unit rows and tau >= 1/60: no shift needed (as the engine's test)
        rows, columns = exp.sum(1), exp.sum(0)
        positives = (anchors * y).sum()
        ctx.save_for_backward(x, y, exp, rows, columns)
        ctx.tau = tau
        return (rows.log().sum() + columns.log().sum() - 2 * positives) / (2 * x.shape[0])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        x, y, exp, rows, columns = ctx.saved_tensors
        scale = grad / (2 * x.shape[0] * ctx.tau)
        weights = torch.mul(exp, (scale / rows)[:, None]).addcmul_(exp, (scale / columns)[None, :])
        weights.diagonal().sub_(2 * scale)
        return torch.mm(weights, y), torch.mm(weights.T, x), None


class MinimalUniformity(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, t: float) -> torch.Tensor:
        squared = x.pow(2).sum(1)
        # -t ||x_i - x_j||² = 2t x_iᵀx_j - t s_j - t s_i, clamped at 0 against rounding, then exp.
        logits = torch.addmm(squared[None, :] * -t, x, x.T, alpha=2 * t).sub_(squared[:, None] * t)
        exp = logits.clamp_max_(0.0).exp_()
        exp.diagonal().zero_()
        total = exp.sum() / 2  # each pair i < j once
        ctx.save_for_backward(x, exp, total)
        ctx.t = t
        n = x.shape[0]
        return total.log() - math.log(n * (n - 1) / 2)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        x, exp, total = ctx.saved_tensors
        # d/dx_i = (1/S) Σ_j e_ij (-2t)(x_i - x_j)
        scale = grad * (-2 * ctx.t) / total
        return (exp.sum(1, keepdim=True) * x).sub_(torch.mm(exp, x)).mul_(scale), None


LossFn = Callable[..., torch.Tensor]
FORMS: dict[str, dict[str, LossFn]] = {
    "contrastive": {
        "ours": lambda x, y: af.contrastive_loss(x, y, TAU),
        "plain": lambda x, y: plain_contrastive(x, y, TAU),
        "minimal": lambda x, y: MinimalInfoNCE.apply(x, y, TAU),
    },
    "uniform": {
        "ours": lambda x, y: af.uniform_loss(x, UNIFORM_T),
        "plain": lambda x, y: plain_uniform(x, UNIFORM_T),
        "minimal": lambda x, y: MinimalUniformity.apply(x, UNIFORM_T),
    },
}


def check_minimal(loss: str, n: int = 48, d: int = 16) -> float:
    """The largest difference of the prototype's value and gradients from the plain form's, in float64."""
    x, y = (v.double() for v in pair(n, d, torch.device("cpu")))
    results = []
    for form in ("plain", "minimal"):
        a, b = x.clone().requires_grad_(), y.clone().requires_grad_()
        value = FORMS[loss][form](a, b)
        value.backward()
        results.append([value.detach(), a.grad, b.grad if b.grad is not None else torch.zeros(())])
    return max(float((p - m).abs().max()) for p, m in zip(*results, strict=True))


def time_forms(loss: str, n: int, rounds: int, calls: int = 10) -> dict[str, float]:
    """Median over rounds of each form's time / the plain form's (forward + backward, ``calls`` calls a sample)."""
    x, y = pair(n, 128, torch.device("cpu"))

    def step(fn: LossFn) -> Callable[[], None]:
        def run() -> None:
            a, b = x.detach().requires_grad_(), y.detach().requires_grad_()
            fn(a, b).backward()

        return run

    steps = {form: step(fn) for form, fn in FORMS[loss].items()}
    for run in steps.values():
        for _ in range(2):  # with timed_samples' own, three warm-up calls each
            run()
    samples = timed_samples(steps, rounds, torch.device("cpu"), calls=calls)
    return {
        form: statistics.median(a / b for a, b in zip(values, samples["plain"], strict=True))
        for form, values in samples.items()
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[256])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, allocator {steady_allocator()}")
    for loss in FORMS:
        error = check_minimal(loss)
        assert error < 1e-10, f"the minimal {loss} form is wrong: {error:g} from the plain form in float64"
        print(f"{loss}: the minimal form matches the plain form in float64 to {error:.1e}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for n in args.n:
            for loss in FORMS:
                ratios = time_forms(loss, n, args.rounds)
                print(
                    f"  {loss:<12} N={n:<5} threads={threads}  ours/plain {ratios['ours']:.2f}  "
                    f"minimal/plain {ratios['minimal']:.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
