"""The hard contrastive loss against its plain top-k form, for every fraction of kept negatives.

Usage:
    python benchmarks/bench_hard.py                                  # N 256 1024 4096, alpha 0.01 0.08 0.3 0.6
    python benchmarks/bench_hard.py --n 4096 --alpha 0.3 --repeats 9 --threads 1
    python benchmarks/bench_hard.py --n 4096 --alpha 0.3 --parts      # where the time goes, pass by pass
    python benchmarks/bench_hard.py --n 4096 --alpha 0.3 --profile    # torch.profiler's table, one step

``run.py`` times the hard loss at one alpha (``forms.HARD_ALPHA``); the selection's cost depends on alpha, so
this script times ``hard_contrastive_loss`` (symmetric, in-batch, tau = 0.1, d = 128, float32, forward +
backward) against the dense top-k form (``x @ y.T``, ``topk`` of each row's negatives, both directions) and one
N x N GEMM, interleaved in one process (one call of each per round, after a warm-up). Each round gives the
paired ratios ours / plain and ours / GEMM; a line reports their median and their spread (min to max over the
rounds). Before timing, the two forms' values are checked equal in float64.

``--parts`` times the paired engine's passes instead, interleaved likewise, in GEMM-equivalents: each
direction's threshold selection on the logits, the forward (GEMM, selections, the masked-exp sums), and forward
+ backward; ``--profile`` prints torch.profiler's table (self CPU time per operator) of one forward + backward.
"""

from __future__ import annotations

import argparse
import math
from statistics import median

import torch

import aligniform as af
from aligniform.losses.engine import hardest_logsumexp_both, kept_negatives
from aligniform.losses.engine.select import kth_largest, kth_largest_columns
from bench_losses import TAU, timed_samples
from forms import batch, forward_backward


def plain_top_k(x: torch.Tensor, y: torch.Tensor, alpha: float, tau: float = TAU) -> torch.Tensor:
    """The symmetric hard loss written densely: each row's ``kept`` largest negatives (plus ties) by ``topk``."""
    n = x.shape[0]
    kept = kept_negatives(alpha, n - 1)
    diagonal = torch.eye(n, dtype=torch.bool, device=x.device)
    terms = []
    for anchors, others in ((x, y), (y, x)):
        logits = anchors @ others.T / tau
        positive = logits.diagonal()
        negatives = logits.masked_fill(diagonal, -math.inf)
        threshold = negatives.detach().topk(kept, dim=1).values[:, -1:]
        negatives = negatives.masked_fill(negatives < threshold, -math.inf)
        terms.append(torch.logaddexp(torch.logsumexp(negatives, 1), positive) - positive)
    return torch.cat(terms).mean()


def check(alpha: float, device: torch.device) -> None:
    x, y, _ = batch(300, 16, device)
    x, y = x.double(), y.double()
    ours, plain = af.hard_contrastive_loss(x, y, TAU, alpha), plain_top_k(x, y, alpha)
    if not torch.allclose(ours, plain, rtol=1e-12, atol=1e-12):
        raise AssertionError(f"alpha {alpha}: {float(ours)} != {float(plain)}")


def measure(n: int, alphas: list[float], repeats: int, dim: int, device: torch.device) -> list[dict]:
    x, y, labels = batch(n, dim, device)
    fns = {"gemm": lambda: x @ y.T}
    for alpha in alphas:
        fns[f"ours {alpha}"] = forward_backward(
            lambda a, b, _, alpha=alpha: af.hard_contrastive_loss(a, b, TAU, alpha), x, y, labels
        )
        fns[f"plain {alpha}"] = forward_backward(lambda a, b, _, alpha=alpha: plain_top_k(a, b, alpha), x, y, labels)
    samples = timed_samples(fns, repeats, device)
    rows = []
    for alpha in alphas:
        ours, plain = samples[f"ours {alpha}"], samples[f"plain {alpha}"]
        ratios = sorted(a / b for a, b in zip(ours, plain, strict=True))
        gemms = sorted(a / b for a, b in zip(ours, samples["gemm"], strict=True))
        plain_gemms = [a / b for a, b in zip(plain, samples["gemm"], strict=True)]
        rows.append(
            {
                "n": n,
                "alpha": alpha,
                "ratio_to_plain": median(ratios),
                "ratio_min": ratios[0],
                "ratio_max": ratios[-1],
                "gemm_equivalents": median(gemms),
                "gemm_min": gemms[0],
                "gemm_max": gemms[-1],
                "plain_gemm_equivalents": median(plain_gemms),
                "gemm_ms": median(samples["gemm"]) * 1e3,
            }
        )
    return rows


def parts(n: int, alpha: float, repeats: int, dim: int, device: torch.device) -> None:
    """Print the median time of each pass of the paired engine (symmetric in-batch), in GEMM-equivalents."""
    x, y, _ = batch(n, dim, device)
    anchors, kept = x / TAU, kept_negatives(alpha, n - 1)
    logits = anchors @ y.T
    logits.diagonal().fill_(-math.inf)

    def forward_backward() -> None:
        a, b = anchors.detach().requires_grad_(), y.detach().requires_grad_()
        row_part, column_part = hardest_logsumexp_both(a, b, kept)
        (row_part.sum() + column_part.sum()).backward()

    def forward() -> None:
        with torch.no_grad():
            hardest_logsumexp_both(anchors, y, kept)

    fns = {
        "GEMM": lambda: x @ y.T,
        "row thresholds": lambda: kth_largest(logits, kept),
        "column thresholds": lambda: kth_largest_columns(logits, kept),
        "forward": forward,
        "forward + backward": forward_backward,
    }
    samples = timed_samples(fns, repeats, device)
    gemm = median(samples["GEMM"])
    print(f"N = {n}, alpha = {alpha} (kept {kept}): median ms and GEMM-equivalents over {repeats} rounds")
    for name, values in samples.items():
        print(f"  {name:20s} {median(values) * 1e3:8.1f} ms  {median(values) / gemm:5.2f}")


def profile(n: int, alpha: float, dim: int, device: torch.device) -> None:
    """Print torch.profiler's operator table for one forward + backward of the hard loss (after a warm-up)."""
    x, y, labels = batch(n, dim, device)
    step = forward_backward(lambda a, b, _: af.hard_contrastive_loss(a, b, TAU, alpha), x, y, labels)
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        step()
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--alpha", type=float, nargs="+", default=[0.01, 0.08, 0.3, 0.6])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--parts", action="store_true", help="time the engine's passes instead")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's table of one step")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.parts or args.profile:
        for n in args.n:
            for alpha in args.alpha:
                if args.parts:
                    parts(n, alpha, args.repeats, args.dim, device)
                else:
                    profile(n, alpha, args.dim, device)
        return
    for alpha in args.alpha:
        check(alpha, device)
    print(f"torch {torch.__version__}, {device}, {args.threads} thread(s), {args.repeats} rounds, d = {args.dim}")
    print("| N | alpha | ours / plain top-k: median (min–max) | GEMM-equivalents: median (min–max) | plain, GEMMs |")
    print("|---|---|---|---|---|")
    for n in args.n:
        for row in measure(n, args.alpha, args.repeats, args.dim, device):
            print(
                f"| {row['n']} | {row['alpha']} | {row['ratio_to_plain']:.2f} ({row['ratio_min']:.2f}–"
                f"{row['ratio_max']:.2f}) | {row['gemm_equivalents']:.1f} ({row['gemm_min']:.1f}–"
                f"{row['gemm_max']:.1f}) | {row['plain_gemm_equivalents']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
