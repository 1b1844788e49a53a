"""`make bench`: every loss against its plain form and one GEMM, the training loop, into one results file.

Usage:
    python benchmarks/run.py                                 # the full run, into benchmarks/results.json
    python benchmarks/run.py --quick --out /tmp/quick.json   # a smoke run: N = 256, 1 thread, 3 rounds
    python benchmarks/run.py --losses contrastive uniform --n 1024 --threads 1
    python benchmarks/run.py --device cuda --untiled         # on a GPU, also against the untiled engine
    python benchmarks/compare.py benchmarks/results.json benchmarks/baseline.json   # the regression check

For each loss of ``forms.LOSSES``, N in {256, 1024, 4096} (d = 128, float32) and torch threads in {1, 2}, the loss's
forward + backward, its plain form's and one N x N GEMM (``x @ y.T``) run interleaved in the same process, one call
of each per round (and one ``torch.exp`` over an N x N matrix, for the floor). Each round gives the ratios
ours / plain and ours / GEMM; a row reports their medians over the rounds, so a load change during the run hits
numerator and denominator alike. Timings on a shared machine vary by ±30 %; the ratios are what compare.py checks.
On the CPU the timing runs with a steady allocator (``--allocator steady``, the default: glibc keeps freed blocks up
to 32 MiB instead of mapping fresh pages per call, see ``allocator.steady_allocator``), so that a row's ratio does
not depend on which losses ran before it; ``--allocator default`` measures glibc as it is.
``meta.allocator`` says which.

A row per (loss, N, threads): ``ratio_to_plain`` (ours / plain time: below 1 is faster; the public call, input
checks on), ``unchecked_ratio_to_plain`` (the same with the value checks off, as the ``Trainer`` calls it),
``gemm_equivalents`` (ours / GEMM), ``floor_gemm_equivalents`` (what the loss must do, counted as ``forms.py`` states),
``peak_mib`` and ``plain_peak_mib`` (peak extra memory of one forward + backward, measured once per N in a fresh
process: the resident set sampled every 5 ms with ``MALLOC_MMAP_THRESHOLD_`` set so that freed blocks leave it, or
the CUDA allocator's peak; at N = 256 a step is too short for the sampler to be more than a lower bound), and with
``--untiled`` ``untiled_ratio`` (ours / ours with the whole matrix in one tile). ``training`` holds one entry per
thread count: bench_training.py's full step against the bare model step (``ratio`` = loop / bare images per second),
and ``Trainer.fit`` against a bare loop (``loop_ratio``, with the loop's seconds per part in ``loop_parts_seconds``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import torch

import aligniform as af
from allocator import steady_allocator
from bench_losses import PeakMemory, synchronize, timed_samples
from forms import LOSSES, LossForm, batch, forward_backward

HERE = Path(__file__).resolve().parent
CUDA_CALLS = 10  # calls per timed sample on a GPU (bench_losses.timed_samples); one on the CPU, as the baseline
MEMORY_TIMEOUT = 180.0  # seconds for one peak-memory process (on the CPU at N = 4096: about 20)
DEFAULT_OUT = HERE / "results.json"
FULL = {"n": [256, 1024, 4096], "threads": [1, 2], "repeats": 7}
QUICK = {"n": [256], "threads": [1], "repeats": 3}
TRAINING_FULL = {"dataset": "mnist5k", "model": "convnet", "batch_size": 256, "steps": 10}
TRAINING_QUICK = {"dataset": "digits", "model": "convnet", "batch_size": 64, "steps": 3}
# The whole loop against a bare one (bench_training.measure_loop); epochs None: one monitoring cycle.
LOOP_FULL = {"epochs": None, "rounds": 2}
LOOP_QUICK = {"epochs": 1, "rounds": 1}
MEMORY_SECONDS = 0.1  # each form is repeated for this long under the sampler, so short steps are seen at all


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def paired_median(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of numerator / denominator, each ratio from the same round."""
    return median([a / b for a, b in zip(numerator, denominator, strict=True)])


def tile_holders() -> list[ModuleType]:
    """The loaded ``aligniform`` modules that hold the engine's tile size, ``BLOCK_ELEMENTS``.

    The tile size is a module constant, not a public option; it is found by name, so module renames
    do not break the untiled comparison. Looked up once: scanning ``sys.modules`` costs about a millisecond.
    """
    holders = [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("aligniform.") and isinstance(getattr(module, "BLOCK_ELEMENTS", None), int)
    ]
    if not holders:
        raise RuntimeError("no aligniform module holds BLOCK_ELEMENTS: the untiled comparison is not available")
    return holders


@contextlib.contextmanager
def untiled(holders: list[ModuleType], elements: int, columns: int | None = None) -> Iterator[None]:
    """The loss engine with tiles of at least ``elements`` elements and ``columns`` columns (default: as many).

    With ``elements`` and ``columns`` at least the matrix's, its whole matrix is one tile (a tile is also capped
    at ``BLOCK_COLUMNS`` columns, 4096, so the 2N x 2N matrices of N = 4096 need the columns raised too).
    """
    with tiles(holders, lambda value: max(value, elements), lambda value: max(value, columns or elements)):
        yield


@contextlib.contextmanager
def tiles(
    holders: list[ModuleType], elements: Callable[[int], int], columns: Callable[[int], int] | None = None
) -> Iterator[None]:
    """The engine's tile constants, ``BLOCK_ELEMENTS`` and ``BLOCK_COLUMNS``, set from their values, then restored."""
    rules = {"BLOCK_ELEMENTS": elements, "BLOCK_COLUMNS": columns or (lambda value: value)}
    saved = [(module, name, getattr(module, name)) for module in holders for name in rules if hasattr(module, name)]
    for module, name, value in saved:
        setattr(module, name, rules[name](value))
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def time_rows(
    names: list[str], ns: list[int], threads: list[int], repeats: int, dim: int, device: torch.device, untiled_too: bool
) -> list[dict]:
    """One row per (loss, N, threads), without memory (see :func:`measure_memory`)."""
    rows = []
    holders = tile_holders() if untiled_too else None
    for thread_count in threads:
        torch.set_num_threads(thread_count)
        for n in ns:
            inputs = batch(n, dim, device)
            for name in names:
                row = {"loss": name, "n": n, "threads": thread_count, "device": device.type, "d": dim}
                row.update(time_one(LOSSES[name], inputs, repeats, device, holders))
                rows.append(row)
                print(_row_line(row), flush=True)
    return rows


def time_one(
    form: LossForm,
    inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    repeats: int,
    device: torch.device,
    holders: list[ModuleType] | None,
) -> dict[str, float]:
    """The timing columns of one row: the loss, its plain form, one GEMM and one exp pass, interleaved."""
    x, y, _ = inputs
    n = x.shape[0]
    similarities = x @ y.T
    scratch = torch.empty_like(similarities)
    ours = forward_backward(form.ours, *inputs)

    def unchecked() -> None:
        with af.input_checks(False):  # as the Trainer calls the losses after its first steps
            ours()

    fns: dict[str, Callable[[], object]] = {
        "ours": ours,
        "unchecked": unchecked,
        "plain": forward_backward(form.plain, *inputs),
        "gemm": lambda: x @ y.T,
        "exp": lambda: torch.exp(similarities, out=scratch),
    }
    if holders is not None:

        def one_tile() -> None:
            with untiled(holders, 4 * n * n):  # the 2N x 2N matrix of the SimCLR-style losses
                ours()

        fns["untiled"] = one_tile
    samples = timed_samples(fns, repeats, device, calls=CUDA_CALLS if device.type == "cuda" else 1)
    exp_per_gemm = paired_median(samples["exp"], samples["gemm"])
    columns = {
        "ratio_to_plain": paired_median(samples["ours"], samples["plain"]),
        "unchecked_ratio_to_plain": paired_median(samples["unchecked"], samples["plain"]),
        "gemm_equivalents": paired_median(samples["ours"], samples["gemm"]),
        "floor_gemm_equivalents": form.floor_gemms + form.floor_exp_passes * exp_per_gemm,
        "floor_gemms": form.floor_gemms,
        "floor_exp_passes": form.floor_exp_passes,
        "exp_per_gemm": exp_per_gemm,
        "ms": median(samples["ours"]) * 1e3,
        "plain_ms": median(samples["plain"]) * 1e3,
        "gemm_ms": median(samples["gemm"]) * 1e3,
    }
    if holders is not None:
        columns["untiled_ratio"] = paired_median(samples["ours"], samples["untiled"])
    return columns


def _row_line(row: dict) -> str:
    line = (
        f"  {row['loss']:<23} N={row['n']:<5} threads={row['threads']}  ours/plain {row['ratio_to_plain']:6.3f}  "
        f"(unchecked {row['unchecked_ratio_to_plain']:6.3f})  "
        f"GEMMs {row['gemm_equivalents']:7.2f} (floor {row['floor_gemm_equivalents']:5.2f})  {row['ms']:8.1f} ms"
    )
    if "untiled_ratio" in row:
        line += f"  ours/untiled {row['untiled_ratio']:5.2f}"
    return line


def memory_in_this_process(names: list[str], n: int, dim: int, device: torch.device) -> dict[str, dict[str, float]]:
    """Peak extra MiB of one forward + backward of each loss and its plain form (a fresh process: see the caller)."""
    torch.set_num_threads(1)
    small = batch(64, dim, device)
    for name in names:  # one-time allocations (thread pools, kernels, caches) before anything is measured
        forward_backward(LOSSES[name].ours, *small)()
        forward_backward(LOSSES[name].plain, *small)()
    x, y, labels = batch(n, dim, device)
    peaks: dict[str, dict[str, float]] = {}
    for name in names:
        peaks[name] = {}
        for form in ("ours", "plain"):
            step = forward_backward(getattr(LOSSES[name], form), x, y, labels)
            with PeakMemory(device) as memory:
                started = time.perf_counter()
                step()
                while time.perf_counter() - started < MEMORY_SECONDS and device.type == "cpu":
                    step()
                synchronize(device)
            peaks[name][form] = memory.extra
    return peaks


def measure_memory(
    names: list[str], ns: list[int], dim: int, device: torch.device, timeout: float = MEMORY_TIMEOUT
) -> dict[int, dict]:
    """Run :func:`memory_in_this_process` for each N in a fresh process, so one N's pages do not hide the next's.

    Each process may take ``timeout`` seconds (``subprocess.TimeoutExpired`` after that).
    """
    environment = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")  # large freed blocks go back to the system
    results = {}
    for n in ns:
        command = [sys.executable, __file__, "--memory-worker", "--n", str(n), "--dim", str(dim)]
        command += ["--device", str(device), "--losses", *names]
        output = subprocess.run(
            command, check=True, capture_output=True, text=True, env=environment, timeout=timeout
        ).stdout
        results[n] = json.loads(output.strip().splitlines()[-1])
    return results


def training_rows(settings: dict, threads: list[int], device: torch.device, loop: dict | None = None) -> list[dict]:
    import bench_training  # the training extra (kornia), imported only here: the loss rows do not need it

    entries = []
    for thread_count in threads:
        torch.set_num_threads(thread_count)
        speeds = bench_training.measure(device=device.type, **settings)
        entry = {**settings, "threads": thread_count, "device": device.type}
        entry.update(baseline_images_per_s=speeds["baseline"], loop_images_per_s=speeds["loop"])
        entry["ratio"] = speeds["loop"] / speeds["baseline"]
        line = f"loop / bare step {entry['ratio']:.2f}"
        if loop is not None:
            shape = {key: settings[key] for key in ("dataset", "model", "batch_size")}
            whole = bench_training.measure_loop(**shape, **loop, device=device.type)
            entry.update(loop_epochs=whole["epochs"], loop_rounds=loop["rounds"], loop_ratio=whole["ratio"])
            entry["loop_validate_every"] = whole["validate_every"]
            entry["loop_parts_seconds"] = whole["parts"]
            line += f", whole loop / bare loop {whole['ratio']:.2f}"
        entries.append(entry)
        print(
            f"  training {settings['dataset']}/{settings['model']} batch {settings['batch_size']} "
            f"threads={thread_count}: {line}",
            flush=True,
        )
    return entries


def run(args: argparse.Namespace) -> dict:
    preset = QUICK if args.quick else FULL
    ns, threads, repeats = args.n or preset["n"], args.threads or preset["threads"], args.repeats or preset["repeats"]
    device = torch.device(args.device)
    allocator = steady_allocator() if args.allocator == "steady" else "default"
    print(
        f"torch {torch.__version__}, {device}, N {ns}, threads {threads}, {repeats} rounds, allocator {allocator}",
        flush=True,
    )
    rows = time_rows(args.losses, ns, threads, repeats, args.dim, device, args.untiled)
    if not args.no_memory:
        peaks = measure_memory(args.losses, ns, args.dim, device)
        for row in rows:
            row["peak_mib"] = peaks[row["n"]][row["loss"]]["ours"]
            row["plain_peak_mib"] = peaks[row["n"]][row["loss"]]["plain"]
    training = []
    if not args.no_training:
        training = training_rows(
            TRAINING_QUICK if args.quick else TRAINING_FULL, threads, device, LOOP_QUICK if args.quick else LOOP_FULL
        )
    meta = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "quick": args.quick,
        "repeats": repeats,
        "allocator": allocator,
    }
    return {"meta": meta, "rows": rows, "training": training}


def floor_table(rows: list[dict], n: int = 1024) -> str:
    """The GEMM-equivalents at N = ``n`` beside their floor, as a Markdown table for docs/benchmarks.md."""
    chosen = [row for row in rows if row["n"] == n]
    if not chosen:
        return ""
    lines = [f"| loss | threads | GEMM-equivalents at N = {n} | floor | ours / plain |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['loss']} | {r['threads']} | {r['gemm_equivalents']:.2f} | {r['floor_gemm_equivalents']:.2f} "
        f"| {r['ratio_to_plain']:.3f} |"
        for r in chosen
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the results file (JSON)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: N = 256, 1 thread, 3 rounds, digits")
    parser.add_argument("--losses", nargs="+", choices=list(LOSSES), default=list(LOSSES))
    parser.add_argument("--n", type=int, nargs="+", help="batch sizes (default 256 1024 4096)")
    parser.add_argument("--threads", type=int, nargs="+", help="torch thread counts (default 1 2)")
    parser.add_argument("--repeats", type=int, help="interleaved rounds (default 7; --quick 3)")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (or cuda:1 ...)")
    parser.add_argument("--untiled", action="store_true", help="also time the engine with one tile")
    parser.add_argument(
        "--allocator",
        choices=["steady", "default"],
        default="steady",
        help="steady (default): freed CPU blocks up to 32 MiB stay in the process, so no call pays fresh page "
        "faults and the ratios do not depend on what ran before (allocator.steady_allocator); default: glibc as is",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    parser.add_argument("--no-training", action="store_true", help="skip the training-loop ratio")
    parser.add_argument("--memory-worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.memory_worker:
        print(json.dumps(memory_in_this_process(args.losses, args.n[0], args.dim, torch.device(args.device))))
        return
    results = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(floor_table(results["rows"]))
    print(f"wrote {args.out} ({len(results['rows'])} rows)")


if __name__ == "__main__":
    main()
