"""The related-work losses (sigmoid, SupCon, decoupled, debiased, ...) at large N: time, peak memory and exactness.

Usage:
    python benchmarks/bench_family_losses.py                          # every loss at N = 65,536 (minutes each)
    python benchmarks/bench_family_losses.py --n 8192 --check         # smaller, with a float64 reference
    python benchmarks/bench_family_losses.py --losses sigmoid supcon --threads 2

Each loss runs forward + backward (float32, d = 128 by default) in a fresh process; peak extra memory is the
resident-set high-water mark sampled every 5 ms (the CUDA allocator's peak on a GPU), as in bench_losses.py. A
dense (2N × 2N) float32 similarity matrix at N = 65,536 would be 64 GiB; the tiled losses need O(N × block).
``--check`` adds a float64 reference computed from the definitions, one chunk of anchor rows at a time.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import aligniform as af
from bench_losses import PeakMemory, synchronize  # same folder; run as a script

LOSSES = ("supcon", "decoupled", "decoupled_weighted", "debiased", "hard_debiased", "sigmoid")
TAU, CLASSES = 0.1, 10


def inputs(n: int, d: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = F.normalize(torch.randn(n, d, generator=generator), dim=1)
    y = F.normalize(x + 0.3 * torch.randn(n, d, generator=generator), dim=1)
    labels = torch.randint(0, CLASSES, (n,), generator=generator)
    return x.to(device), y.to(device), labels.to(device)


def loss_function(name: str, labels: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return {
        "supcon": lambda a, b: af.supervised_contrastive_loss(a, b, labels, TAU),
        "decoupled": lambda a, b: af.decoupled_contrastive_loss(a, b, TAU),
        "decoupled_weighted": lambda a, b: af.decoupled_contrastive_loss(a, b, TAU, weighted=True),
        "debiased": lambda a, b: af.debiased_contrastive_loss(a, b, 0.5, 0.1),
        "hard_debiased": lambda a, b: af.debiased_contrastive_loss(a, b, 0.5, 0.1, beta=1.0),
        "sigmoid": lambda a, b: af.sigmoid_loss(a, b, 10.0, -10.0),
    }[name]


def chunked_loss(name: str, x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """The loss from the papers' formulas, a chunk of anchors against all candidates at a time, in x's dtype.

    With ``chunk >= 2N`` it is the dense form (the whole 2N x 2N matrix at once, N x N for
    sigmoid), which ``benchmarks/forms.py`` times as the plain baseline, so it keeps autograd working.
    """
    n = x.shape[0]
    if name == "sigmoid":
        total = torch.zeros((), dtype=x.dtype, device=x.device)
        for start in range(0, n, chunk):
            logits = 10.0 * x[start : start + chunk] @ y.T - 10.0
            rows = torch.arange(logits.shape[0], device=x.device)
            logits[rows, rows + start] *= -1  # the positive's label is +1: −log σ(l) = softplus(−l)
            total = total + F.softplus(logits, threshold=40).sum()
        return total / n
    z, z_labels = torch.cat([x, y]), labels.repeat(2)
    tau = 0.5 if "debiased" in name else TAU
    similarity_xy = (x * y).sum(1)
    weights = (
        2 - n * torch.softmax(similarity_xy / 0.5, 0)
        if name == "decoupled_weighted"
        else torch.ones_like(similarity_xy)
    )
    terms = []
    for start in range(0, 2 * n, chunk):
        logits = z[start : start + chunk] @ z.T / tau
        rows = torch.arange(logits.shape[0], device=x.device)
        anchors = rows + start
        partner = (anchors + n) % (2 * n)
        logits[rows, anchors] = -math.inf
        positive = logits[rows, partner].clone()
        if name == "supcon":
            same = z_labels[anchors][:, None] == z_labels[None]
            same[rows, anchors] = False
            log_probability = logits - torch.logsumexp(logits, 1, keepdim=True)
            terms.append(-torch.where(same, log_probability, 0.0).sum(1) / same.sum(1))
            continue
        logits[rows, partner] = -math.inf
        negatives = torch.logsumexp(logits, 1)
        if name.startswith("decoupled"):
            terms.append(negatives - weights[anchors % n] * positive)
            continue
        m = 2 * n - 2
        if name == "hard_debiased":
            negatives = torch.logsumexp(2 * logits, 1) - torch.logsumexp(logits, 1) + math.log(m)
        corrected = (negatives.exp() - 0.1 * m * positive.exp()) / 0.9
        g = corrected.clamp(min=m * math.exp(-1 / tau))
        terms.append(torch.log1p(g / positive.exp()))
    return torch.cat(terms).mean()


def chunked_reference(name: str, x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor, chunk: int = 256) -> float:
    """The loss in float64 from the papers' formulas, a chunk of anchors against all candidates at a time."""
    with torch.no_grad():
        return float(chunked_loss(name, x.double(), y.double(), labels, chunk))


def one(name: str, n: int, d: int, device: torch.device, check: bool) -> None:
    x, y, labels = inputs(n, d, device)
    a, b = x.clone().requires_grad_(), y.clone().requires_grad_()
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        value = loss_function(name, labels)(a, b)
        forward = time.perf_counter() - start
        value.backward()
        synchronize(device)
        seconds = time.perf_counter() - start
    assert a.grad is not None and b.grad is not None
    result = {
        "loss": name,
        "n": n,
        "d": d,
        "seconds": seconds,
        "forward_seconds": forward,
        "value": value.item(),
        "extra_mib": memory.extra,
        "gradient_finite": bool(torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()),
    }
    if check:
        result["float64_reference"] = chunked_reference(name, x, y, labels)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=65536)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--losses", nargs="+", choices=LOSSES, default=list(LOSSES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--check", action="store_true", help="also compute a float64 reference")
    parser.add_argument("--one", choices=LOSSES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.one:
        one(args.one, args.n, args.dim, device, args.check)
        return
    dense = (2 * args.n) ** 2 * 4 / 2**30
    print(f"torch {torch.__version__}, {device}, {args.threads} thread(s); N = {args.n}, d = {args.dim}")
    print(f"a dense 2N x 2N float32 similarity matrix would be {dense:.1f} GiB")
    for name in args.losses:
        command = [sys.executable, __file__, "--one", name, "--n", str(args.n), "--dim", str(args.dim)]
        command += ["--device", str(device), "--threads", str(args.threads)] + (["--check"] if args.check else [])
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        result = json.loads(output.strip().splitlines()[-1])
        line = (
            f"  {name}: {result['seconds']:.1f} s fwd+bwd ({result['forward_seconds']:.1f} s fwd), "
            f"peak extra memory {result['extra_mib']:.0f} MiB, value {result['value']:.6f}, "
            f"gradient finite: {result['gradient_finite']}"
        )
        if "float64_reference" in result:
            reference = result["float64_reference"]
            line += f", float64 reference {reference:.6f} (rel. diff {abs(result['value'] / reference - 1):.1e})"
        print(line, flush=True)


if __name__ == "__main__":
    main()
