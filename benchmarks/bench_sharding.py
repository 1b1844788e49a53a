"""Sharded losses: per-rank time and memory of the loss with 1, 2, 3 processes on the same global batch.

Usage:
    python benchmarks/bench_sharding.py                                  # N = 4096, d = 128, 1 2 3 processes
    python benchmarks/bench_sharding.py --processes 1 2 --losses contrastive --repeats 9
    python benchmarks/bench_sharding.py --quick                          # N = 1024, a smoke run
    python benchmarks/bench_sharding.py --json out.json                  # also write the raw numbers

Every configuration spawns ``P`` processes in a gloo group (one torch thread each unless ``--threads``), each
holding ``N / P`` rows of the same float32 global batch of unit vectors. Each rank times its
``global_loss(loss, x_r, y_r)`` forward + backward (``torch.distributed`` collectives included):

* ``sharded`` (the default of ``global_loss``): each rank computes only its own anchors' share;
* ``gathered`` (``sharded=False``, the former behaviour): every rank gathers the batch and computes all of it.

Reported per loss and P: the wall time (the slowest rank's best of ``--repeats``), the CPU time of that rank's
process (the work itself, which another job on a shared machine disturbs less than the wall time), both as ratios
to one process, and the peak extra resident memory of a rank during one step. The memory is measured in separate
processes (``--no-memory`` skips them): the resident set sampled every 2 ms, with ``MALLOC_MMAP_THRESHOLD_`` fixed
so that large freed blocks go back to the system and each step's peak is its own (that setting makes every large
allocation fault its pages in, so it would slow the timed runs). Every rank's value must equal one process's (the
largest relative difference is printed). Input checks are off, as in the trainer. With more processes than cores
the ranks share cores and the wall time says little; the CPU time still measures each rank's work.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import socket
import sys
import threading
import time
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

import aligniform as af
from aligniform.distributed import global_loss
from aligniform.losses import nt_xent_loss

LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "contrastive": lambda x, y, shard=None: af.contrastive_loss(x, y, tau=0.1, shard=shard),
    "uniform": af.UniformLoss(t=2.0),  # both views, as the paper trains
    "nt_xent": lambda x, y, shard=None: nt_xent_loss(x, y, tau=0.1, shard=shard),
    "hard_contrastive": lambda x, y, shard=None: af.hard_contrastive_loss(x, y, tau=0.1, alpha=0.1, shard=shard),
    "objective": af.Objective.parse("contrastive(tau=0.2) + uniform(t=2)"),
}
DEFAULT_LOSSES = ["contrastive", "uniform", "nt_xent"]


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


class PeakRss:
    """Peak resident memory above the start of a block, sampled every 2 ms (MiB)."""

    def __enter__(self) -> PeakRss:
        self.start = self.peak = rss_mib()
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_mib())
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.thread.join()
        self.extra = max(self.peak, rss_mib()) - self.start


def global_batch(n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(n, d, generator=generator), dim=1)
    y = F.normalize(x + 0.3 * torch.randn(n, d, generator=generator), dim=1)
    return x, y


def rank_main(rank: int, world: int, port: int, args: argparse.Namespace, memory: bool, out: mp.Queue) -> None:
    torch.set_num_threads(args.threads)
    af.set_input_checks(False)  # as the trainer runs the losses (checks cost a sync, and a collective when sharded)
    if world > 1:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(seconds=600),
        )
    x_all, y_all = global_batch(args.n, args.dim)
    counts = [args.n // world + (r < args.n % world) for r in range(world)]
    start = sum(counts[:rank])
    rows = slice(start, start + counts[rank])
    results = []
    for name in args.losses:
        loss_fn = LOSSES[name]
        for mode in ("sharded", "gathered") if world > 1 else ("one",):
            walls, cpus, peaks, value = [], [], [], float("nan")
            for repeat in range(2 if memory else args.repeats + 1):  # the first is a warm-up
                x = x_all[rows].clone().requires_grad_()
                y = y_all[rows].clone().requires_grad_()
                if world > 1:
                    dist.barrier()
                with PeakRss() as memory:
                    wall, cpu = time.perf_counter(), time.process_time()
                    loss = global_loss(loss_fn, x, y, sharded=mode != "gathered")
                    loss.backward()
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                if repeat:
                    walls.append(wall)
                    cpus.append(cpu)
                    peaks.append(memory.extra)
                value = loss.item()
            results.append(
                {"loss": name, "mode": mode, "wall": min(walls), "cpu": min(cpus), "peak": max(peaks), "value": value}
            )
    out.put((rank, results))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(world: int, args: argparse.Namespace, memory: bool = False) -> list[dict]:
    """Every rank's results for one process count, combined: the slowest rank, the largest peak."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    port = free_port()
    processes = [context.Process(target=rank_main, args=(r, world, port, args, memory, queue)) for r in range(world)]
    previous = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    if memory:  # read by the children's C library at start-up
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
    try:
        for process in processes:
            process.start()
    finally:
        if memory and previous is None:
            del os.environ["MALLOC_MMAP_THRESHOLD_"]
        elif memory:
            os.environ["MALLOC_MMAP_THRESHOLD_"] = previous
    by_rank = dict(queue.get(timeout=3600) for _ in processes)
    for process in processes:
        process.join(60)
    combined = []
    for index, first in enumerate(by_rank[0]):
        ranks = [by_rank[r][index] for r in range(world)]
        combined.append(
            {
                **{key: first[key] for key in ("loss", "mode")},
                "processes": world,
                "wall": max(r["wall"] for r in ranks),
                "cpu": max(r["cpu"] for r in ranks),
                "peak": max(r["peak"] for r in ranks),
                "values": [r["value"] for r in ranks],
            }
        )
    return combined


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4096, help="global batch size")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--losses", nargs="+", choices=sorted(LOSSES), default=DEFAULT_LOSSES)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--quick", action="store_true", help="N = 1024, 3 repeats")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats = 1024, 3
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    print(
        f"torch {torch.__version__}, N = {args.n}, d = {args.dim}, {args.threads} thread(s) per process, "
        f"{os.cpu_count()} cores, best of {args.repeats}"
    )
    rows = [row for world in sorted(set(args.processes)) for row in run(world, args)]
    if not args.no_memory:
        peaks = [row["peak"] for world in sorted(set(args.processes)) for row in run(world, args, memory=True)]
        for row, peak in zip(rows, peaks):
            row["peak"] = peak
    else:
        for row in rows:
            row["peak"] = float("nan")
    one = {row["loss"]: row for row in rows if row["processes"] == 1}
    print(
        f"{'loss':<17} {'P':>2} {'mode':<9} {'wall ms':>8} {'ratio':>6} {'cpu ms':>8} {'ratio':>6} "
        f"{'peak MiB':>9} {'value diff':>10}"
    )
    for row in rows:
        base = one.get(row["loss"])
        wall_ratio = row["wall"] / base["wall"] if base else float("nan")
        cpu_ratio = row["cpu"] / base["cpu"] if base else float("nan")
        reference = base["values"][0] if base else row["values"][0]
        difference = max(abs(v - reference) / max(1.0, abs(reference)) for v in row["values"])
        row.update(wall_ratio=wall_ratio, cpu_ratio=cpu_ratio, value_difference=difference)
        print(
            f"{row['loss']:<17} {row['processes']:>2} {row['mode']:<9} {1e3 * row['wall']:>8.1f} {wall_ratio:>6.2f} "
            f"{1e3 * row['cpu']:>8.1f} {cpu_ratio:>6.2f} {row['peak']:>9.1f} {difference:>10.1e}"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"argv": sys.argv[1:], "n": args.n, "dim": args.dim, "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
