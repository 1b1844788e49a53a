"""Speed and memory of the objective core, as ratios against baselines run in the same process.

Usage:
    python benchmarks/bench_losses.py            # all three measurements
    python benchmarks/bench_losses.py --quick    # smaller N, for a smoke run

Measures (forward + backward, float32):
  1. uniform_loss vs the plain pdist formula at N = 4096, d = 128, and vs one x @ x.T GEMM.
  2. uniform_loss at N = 65,536, d = 128: wall time and peak extra memory (RSS high-water mark).
  3. contrastive_loss vs pytorch-metric-learning's NTXentLoss at N = 4096 (if installed).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
import torch.nn.functional as F

import aligniform as af


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs, after one warm-up."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return sorted(samples)[len(samples) // 2]


def forward_backward(loss_fn, x):
    def run():
        leaf = x.detach().requires_grad_()
        loss_fn(leaf).backward()

    return run


def plain_uniform(x, t=2.0):
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()


def bench_uniform_vs_pdist(n: int, d: int, repeats: int) -> None:
    x = F.normalize(torch.randn(n, d), dim=1)
    ours = timed(forward_backward(lambda v: af.uniform_loss(v, 2.0), x), repeats)
    plain = timed(forward_backward(plain_uniform, x), repeats)
    gemm = timed(lambda: x @ x.T, repeats)
    print(f"uniform_loss fwd+bwd N={n} d={d}: {ours * 1e3:.1f} ms")
    print(f"  plain pdist fwd+bwd: {plain * 1e3:.1f} ms  -> speed-up {plain / ours:.2f}x")
    print(f"  one x @ x.T GEMM:    {gemm * 1e3:.1f} ms  -> uniform_loss costs {ours / gemm:.2f} GEMMs")


def current_rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


class PeakMemory:
    """Samples this process's resident memory every 5 ms in a thread; ``extra`` is peak minus start."""

    def __enter__(self):
        import threading

        self.start = self.peak = current_rss_mib()
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, current_rss_mib())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.extra = self.peak - self.start


def bench_uniform_large(n: int, d: int) -> None:
    """Run in a fresh process so the RSS high-water mark is this measurement's alone."""
    import subprocess
    import sys

    subprocess.run([sys.executable, __file__, "--large-only", str(n), str(d)], check=True)


def _uniform_large_in_this_process(n: int, d: int) -> None:
    x = F.normalize(torch.randn(n, d), dim=1).requires_grad_()
    with PeakMemory() as memory:
        start = time.perf_counter()
        loss = af.uniform_loss(x, 2.0)
        loss.backward()
        seconds = time.perf_counter() - start
    extra = memory.extra
    print(
        f"uniform_loss fwd+bwd N={n} d={d}: {seconds:.1f} s, value {loss.item():.4f}, "
        f"peak extra memory {extra:.0f} MiB (inputs {x.numel() * 4 / 2**20:.0f} MiB; "
        f"a dense N×N float32 matrix would be {n * n * 4 / 2**30:.1f} GiB)"
    )


def bench_contrastive_vs_ntxent(n: int, d: int, repeats: int) -> None:
    try:
        from pytorch_metric_learning.losses import NTXentLoss
    except ImportError:
        print("pytorch-metric-learning not installed; skipping the NTXentLoss comparison")
        return
    x = F.normalize(torch.randn(n, d), dim=1)
    y = F.normalize(x + 0.3 * torch.randn(n, d), dim=1)
    ntxent = NTXentLoss(temperature=0.1)
    labels = torch.arange(n).repeat(2)

    def ours():
        a, b = x.detach().requires_grad_(), y.detach().requires_grad_()
        af.contrastive_loss(a, b, 0.1).backward()

    def theirs():
        a, b = x.detach().requires_grad_(), y.detach().requires_grad_()
        ntxent(torch.cat([a, b]), labels).backward()

    mine = timed(ours, repeats)
    print(f"contrastive_loss fwd+bwd N={n} d={d}: {mine * 1e3:.1f} ms")
    try:
        other = timed(theirs, repeats)
    except RuntimeError as error:  # NTXentLoss builds a (#positive pairs x #negative pairs) mask
        print(f"  pytorch-metric-learning NTXentLoss at 2N={2 * n}: failed ({str(error).splitlines()[0][:120]})")
        return
    print(
        f"  pytorch-metric-learning NTXentLoss (2N={2 * n} embeddings): {other * 1e3:.1f} ms -> ratio {other / mine:.2f}x"
    )
    print("  (NTXent also uses same-view negatives, so it does ~4x the pairwise work of the paper's loss)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--large-only", nargs=2, type=int, metavar=("N", "D"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.large_only:
        _uniform_large_in_this_process(*args.large_only)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.quick:
        bench_uniform_vs_pdist(1024, 128, args.repeats)
        bench_uniform_large(8192, 128)
        bench_contrastive_vs_ntxent(1024, 128, args.repeats)
        return
    bench_uniform_vs_pdist(4096, 128, args.repeats)
    bench_contrastive_vs_ntxent(4096, 128, args.repeats)
    bench_contrastive_vs_ntxent(256, 128, args.repeats)  # the largest N at which NTXentLoss fits in memory here
    bench_uniform_large(65536, 128)


if __name__ == "__main__":
    main()
