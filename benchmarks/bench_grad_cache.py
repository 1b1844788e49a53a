"""GradCache memory: peak memory of one ResNet-18 training step with and without ``--grad-cache CHUNK``.

Usage:
    python benchmarks/bench_grad_cache.py                          # batch 512, CHUNK 64, 32x32, CPU
    python benchmarks/bench_grad_cache.py --chunk 32 --batch-size 256
    python benchmarks/bench_grad_cache.py --device cuda            # peak CUDA memory instead of RSS

Each configuration runs in its own fresh subprocess, which builds the encoder,
SGD and two random 32x32 views of ``batch_size`` samples, then takes one
training step exactly as the trainer does: the plain step is one encoder pass
over both views (``2 × batch_size`` images) with the graph kept for backward;
the cached step is :func:`aligniform.train.grad_cache.grad_cache_pairs_backward`
(embed without graph, loss and embedding gradients on the full batch, re-embed
CHUNK images at a time and backpropagate). Reported per configuration: the
process's peak resident memory (``ru_maxrss``) over the whole run, the peak
before the step (interpreter, torch, model, inputs) and the step's own peak
above it, and the step's wall time. On CUDA the numbers are
``torch.cuda.max_memory_allocated`` instead.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from aligniform import Objective
from aligniform.models import build_model
from aligniform.train.grad_cache import grad_cache_pairs_backward

OBJECTIVE = "contrastive(tau=0.2) + uniform(t=2)"
MIB = 2**20


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def worker(model: str, batch: int, chunk: int | None, size: int, device: torch.device) -> dict[str, float]:
    """One training step in this process; its memory and time."""
    torch.manual_seed(0)
    encoder = build_model(model, dim=128, in_channels=3, image_size=size).to(device).train()
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.1, momentum=0.9)
    objective = Objective.parse(OBJECTIVE)
    view1, view2 = torch.rand(2, batch, 3, size, size, device=device).unbind(0)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    before = _peak_bytes(device)
    started = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    if chunk is None:
        loss = objective(*encoder(torch.cat([view1, view2])).chunk(2))
        loss.backward()
    else:
        loss = grad_cache_pairs_backward(encoder, view1, view2, objective, chunk)
    optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    peak = _peak_bytes(device)
    return {"peak_mib": peak / MIB, "before_mib": before / MIB, "step_mib": (peak - before) / MIB, "seconds": seconds}


def measure(args: argparse.Namespace, chunk: int | None) -> dict[str, float]:
    command = [sys.executable, __file__, "--worker", "--model", args.model, "--batch-size", str(args.batch_size)]
    command += ["--input-size", str(args.input_size), "--device", args.device]
    command += [] if chunk is None else ["--chunk", str(chunk)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"worker {command} failed:\n{result.stderr[-3000:]}")
    measured: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=512, help="samples per step (two views each)")
    parser.add_argument("--chunk", type=int, default=64, help="images per encoder pass of the cached step")
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        chunk = args.chunk if "--chunk" in sys.argv else None
        device = torch.device(args.device)
        print(json.dumps(worker(args.model, args.batch_size, chunk, args.input_size, device)))
        return
    memory = "peak CUDA memory allocated" if args.device.startswith("cuda") else "peak RSS"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}, {memory}")
    print(f"{args.model}, batch {args.batch_size} (x2 views), {args.input_size}x{args.input_size}, {OBJECTIVE}")
    plain = measure(args, None)
    cached = measure(args, args.chunk)
    for name, row in (("plain step", plain), (f"--grad-cache {args.chunk}", cached)):
        print(
            f"  {name:18s} peak {row['peak_mib']:8.0f} MiB  (before the step {row['before_mib']:6.0f} MiB, "
            f"step {row['step_mib']:8.0f} MiB)  {row['seconds']:6.1f} s"
        )
    print(
        f"  ratio cached / plain: peak {cached['peak_mib'] / plain['peak_mib']:.3f}, "
        f"step's own memory {cached['step_mib'] / plain['step_mib']:.3f}, "
        f"time {cached['seconds'] / plain['seconds']:.2f}"
    )


if __name__ == "__main__":
    main()
