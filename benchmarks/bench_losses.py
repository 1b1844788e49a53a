"""Speed and memory of the loss engine, as ratios against baselines run in the same process.

Usage:
    python benchmarks/bench_losses.py                       # everything (the N = 65,536 runs take minutes)
    python benchmarks/bench_losses.py --quick               # smaller N, for a smoke run
    python benchmarks/bench_losses.py --only speed          # just the N = 4096 timings
    python benchmarks/bench_losses.py --only large --large-n 65536 --losses contrastive hard
    python benchmarks/bench_losses.py --device cuda         # the same on a GPU

Measures (forward + backward, float32, ``--threads`` torch threads, default 2):
  1. contrastive_loss at N = 4096, d = 128 against the plain form (x @ y.T, then F.cross_entropy in both
     directions) and against one x @ y.T GEMM; nt_xent_loss against NT-Xent written plainly as lightly and
     solo-learn write it (the same loss; contrastive_loss is a different one, with N - 1 negatives, not 2N - 2).
  2. uniform_loss at N = 4096 against the plain pdist form and one x @ x.T GEMM.
  3. contrastive, hard contrastive, asymptotic (and uniform) at N = 65,536, d = 128, each in a fresh process:
     wall time, peak extra memory (resident-set high-water mark sampled every 5 ms on CPU; the CUDA
     allocator's peak on a GPU), and exactness against a float64 reference computed row chunk by row chunk.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import aligniform as af
from aligniform.losses import nt_xent_loss

LARGE_LOSSES = ("contrastive", "hard", "asymptotic", "uniform")
TAU = 0.1


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_samples(
    fns: dict[str, Callable[[], object]], repeats: int, device: torch.device, calls: int = 1
) -> dict[str, list[float]]:
    """Seconds of each ``fn()`` in each of ``repeats`` rounds, after one warm-up each.

    The functions run interleaved (one sample of each per round), so a change in the
    machine's load during the measurement hits every candidate alike and the ratios
    stay meaningful on a shared machine. A sample is ``calls`` calls back to back, then
    one synchronisation, divided by ``calls``: on a GPU, where one call of a small
    kernel takes microseconds, a sample of one call would mostly time the launch and
    the synchronisation.
    """
    for fn in fns.values():
        fn()
    synchronize(device)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            synchronize(device)
            samples[name].append((time.perf_counter() - start) / calls)
    return samples


def timed(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds of each ``fn()`` over ``repeats`` interleaved rounds (see :func:`timed_samples`)."""
    samples = timed_samples(fns, repeats, device)
    return {name: sorted(values)[len(values) // 2] for name, values in samples.items()}


def pair(n: int, d: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(n, d, generator=generator), dim=1)
    y = F.normalize(x + 0.3 * torch.randn(n, d, generator=generator), dim=1)
    return x.to(device), y.to(device)


def fwd_bwd(loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor):
    def run() -> None:
        a, b = x.detach().requires_grad_(), y.detach().requires_grad_()
        loss(a, b).backward()

    return run


# ---------------------------------------------------------------- the plain forms


def plain_contrastive(x: torch.Tensor, y: torch.Tensor, tau: float = TAU) -> torch.Tensor:
    """The symmetric in-batch InfoNCE as usually written: the full matrix, then cross-entropy both ways."""
    logits = x @ y.T / tau
    targets = torch.arange(x.shape[0], device=x.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def lightly_nt_xent(x: torch.Tensor, y: torch.Tensor, tau: float = TAU) -> torch.Tensor:
    """NT-Xent as lightly's NTXentLoss computes it (no memory bank): four blocks, self-pairs dropped."""
    n = x.shape[0]
    diagonal = torch.eye(n, dtype=torch.bool, device=x.device)
    logits_00 = (x @ x.T / tau)[~diagonal].view(n, -1)
    logits_11 = (y @ y.T / tau)[~diagonal].view(n, -1)
    logits_01, logits_10 = x @ y.T / tau, y @ x.T / tau
    logits = torch.cat([torch.cat([logits_01, logits_00], 1), torch.cat([logits_10, logits_11], 1)])
    return F.cross_entropy(logits, torch.arange(n, device=x.device).repeat(2))


def solo_nt_xent(x: torch.Tensor, y: torch.Tensor, tau: float = TAU) -> torch.Tensor:
    """NT-Xent as solo-learn's simclr_loss_func computes it (one process): exp of the 2N × 2N matrix, masks."""
    z = torch.cat([x, y])
    indexes = torch.arange(x.shape[0], device=x.device).repeat(2)[None]
    sim = torch.exp(z @ z.T / tau)
    pos_mask = indexes.T == indexes
    pos_mask.fill_diagonal_(False)
    neg_mask = indexes.T != indexes
    pos = torch.sum(sim * pos_mask, 1)
    neg = torch.sum(sim * neg_mask, 1)
    return -(torch.mean(torch.log(pos / (pos + neg))))


def plain_uniform(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()


# ---------------------------------------------------------------- 1 and 2: N = 4096


def bench_speed(n: int, d: int, repeats: int, device: torch.device) -> None:
    x, y = pair(n, d, device)
    t = timed(
        {
            "gemm": lambda: x @ y.T,
            "gram": lambda: x @ x.T,
            "contrastive": fwd_bwd(lambda a, b: af.contrastive_loss(a, b, TAU), x, y),
            "plain": fwd_bwd(plain_contrastive, x, y),
            "nt_xent": fwd_bwd(lambda a, b: nt_xent_loss(a, b, TAU), x, y),
            "lightly": fwd_bwd(lightly_nt_xent, x, y),
            "solo": fwd_bwd(solo_nt_xent, x, y),
            "uniform": fwd_bwd(lambda a, b: af.uniform_loss(a, 2.0), x, y),
            "pdist": fwd_bwd(lambda a, b: plain_uniform(a), x, y),
        },
        repeats,
        device,
    )
    value, reference = af.contrastive_loss(x, y, TAU).item(), plain_contrastive(x.double(), y.double()).item()
    ms = {name: seconds * 1e3 for name, seconds in t.items()}
    print(f"one x @ y.T GEMM N={n} d={d}: {ms['gemm']:.1f} ms")
    print(f"contrastive_loss fwd+bwd: {ms['contrastive']:.1f} ms = {t['contrastive'] / t['gemm']:.2f} GEMMs")
    print(f"  value {value:.6f}; the plain form in float64 gives {reference:.6f}")
    print(
        f"  plain x @ y.T + F.cross_entropy both ways: {ms['plain']:.1f} ms "
        f"-> ours {t['plain'] / t['contrastive']:.2f}x faster"
    )
    print(f"nt_xent_loss fwd+bwd (2N = {2 * n} views, the same loss as lightly / solo-learn): {ms['nt_xent']:.1f} ms")
    print(f"  lightly NTXentLoss form: {ms['lightly']:.1f} ms -> ours {t['lightly'] / t['nt_xent']:.2f}x faster")
    print(f"  solo-learn simclr_loss_func form: {ms['solo']:.1f} ms -> ours {t['solo'] / t['nt_xent']:.2f}x faster")
    print(
        "  (NT-Xent: 2N - 2 negatives per anchor, same-view ones included, a 2N x 2N matrix; "
        "contrastive_loss: N - 1 negatives, N x N)"
    )
    print(
        f"uniform_loss fwd+bwd: {ms['uniform']:.1f} ms "
        f"= {t['uniform'] / t['gram']:.2f} x @ x.T GEMMs ({ms['gram']:.1f} ms)"
    )
    print(f"  plain pdist form: {ms['pdist']:.1f} ms -> ours {t['pdist'] / t['uniform']:.2f}x faster")


# ---------------------------------------------------------------- 3: large N, one process per loss


def current_rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


class PeakMemory:
    """Peak extra memory of a block: sampled resident set on CPU, the allocator's peak on CUDA (MiB)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device) / 2**20
            return self
        self.start = self.peak = current_rss_mib()
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, current_rss_mib())
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self.running = False
            self.thread.join()
            self.peak = max(self.peak, current_rss_mib())
        self.extra = self.peak - self.start


def _large_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return {
        "contrastive": lambda a, b: af.contrastive_loss(a, b, TAU),
        "hard": lambda a, b: af.hard_contrastive_loss(a, b, TAU, 0.08),
        "asymptotic": lambda a, b: af.asymptotic_contrastive_loss(a, b, TAU),
        "uniform": lambda a, b: af.uniform_loss(a, 2.0),
    }[name]


def chunked_loss(name: str, x: torch.Tensor, y: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """The loss from its definition, one chunk of anchor rows at a time, in the inputs' dtype (no tiles).

    With ``chunk >= N`` it is the dense form (the whole N x N matrix at once), which
    ``benchmarks/forms.py`` times as the plain baseline, so it keeps autograd working.
    """
    n = x.shape[0]
    if name == "uniform":
        total = torch.tensor(-math.inf, dtype=x.dtype, device=x.device)
        for start in range(0, n - 1, chunk):
            distances = torch.cdist(x[start : start + chunk], x[start + 1 :]).pow(2)
            rows = torch.arange(start, min(start + chunk, n), device=x.device)[:, None]
            later = torch.arange(start + 1, n, device=x.device)[None] > rows
            total = torch.logaddexp(total, torch.logsumexp((-2.0 * distances)[later], 0))
        return total - math.log(n * (n - 1) / 2)
    terms = []
    for anchors, others in ((x, y), (y, x)):
        for start in range(0, n, chunk):
            logits = anchors[start : start + chunk] @ others.T / TAU
            rows = torch.arange(logits.shape[0], device=x.device)
            positive = logits[rows, rows + start].clone()
            if name == "contrastive":
                terms.append(torch.logsumexp(logits, 1) - positive)
                continue
            logits[rows, rows + start] = -math.inf
            if name == "asymptotic":
                terms.append(torch.logsumexp(logits, 1) - math.log(n - 1) - positive)
                continue
            kept = -(-8 * (n - 1) // 100)  # ceil(0.08 (n - 1)), in integers
            threshold = logits.topk(kept, dim=1).values[:, -1:]
            logits[logits < threshold] = -math.inf
            terms.append(torch.logaddexp(torch.logsumexp(logits, 1), positive) - positive)
    return torch.cat(terms).mean()


def chunked_reference(name: str, x: torch.Tensor, y: torch.Tensor, chunk: int = 512) -> float:
    """The loss in float64 from its definition, one chunk of anchor rows at a time (no autograd, no tiles)."""
    with torch.no_grad():
        return float(chunked_loss(name, x.double(), y.double(), chunk))


def large_in_this_process(name: str, n: int, d: int, device: torch.device, check: bool) -> None:
    x, y = pair(n, d, device, seed=1)
    a, b = x.clone().requires_grad_(), y.clone().requires_grad_()
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        value = _large_loss(name)(a, b)
        value.backward()
        synchronize(device)
        seconds = time.perf_counter() - start
    result = {"loss": name, "n": n, "seconds": seconds, "value": value.item(), "extra_mib": memory.extra}
    result["gradient_finite"] = bool(torch.isfinite(a.grad).all())
    if check:
        result["float64_reference"] = chunked_reference(name, x, y)
    print(json.dumps(result))


def bench_large(names: list[str], n: int, d: int, device: torch.device, threads: int, check: bool) -> None:
    dense = n * n * 4 / 2**30
    print(f"N={n} d={d}: a dense N x N float32 matrix is {dense:.1f} GiB; the plain contrastive form keeps ~2 of them")
    for name in names:
        command = [sys.executable, __file__, "--one-large", name, "--large-n", str(n), "--dim", str(d)]
        command += ["--device", str(device), "--threads", str(threads)] + (["--check"] if check else [])
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        result = json.loads(output.strip().splitlines()[-1])
        line = (
            f"  {name}: {result['seconds']:.1f} s fwd+bwd, peak extra memory {result['extra_mib']:.0f} MiB, "
            f"value {result['value']:.6f}, gradient finite: {result['gradient_finite']}"
        )
        if "float64_reference" in result:
            reference = result["float64_reference"]
            line += f", float64 reference {reference:.6f} (|diff| {abs(result['value'] - reference):.1e})"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    parser.add_argument("--only", choices=["speed", "large"], help="run one part only")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (or cuda:1 ...)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (CPU)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n", type=int, default=4096, help="batch size of the speed comparison")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--large-n", type=int, default=65536)
    parser.add_argument("--losses", nargs="+", choices=LARGE_LOSSES, default=list(LARGE_LOSSES))
    parser.add_argument("--check", action="store_true", help="large runs: also compute a float64 reference")
    parser.add_argument("--one-large", choices=LARGE_LOSSES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.one_large:
        large_in_this_process(args.one_large, args.large_n, args.dim, device, args.check)
        return
    if args.quick:
        args.n, args.large_n, args.repeats = 1024, 8192, 3
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads")
    if args.only in (None, "speed"):
        bench_speed(args.n, args.dim, args.repeats, device)
    if args.only in (None, "large"):
        bench_large(args.losses, args.large_n, args.dim, device, args.threads, args.check)


if __name__ == "__main__":
    main()
