"""The GPU suite: on one CUDA device, the CUDA tests, exactness and autocast checks, ratio benchmarks, a training run.

Usage (from the repository root):
    python benchmarks/gpu_suite.py                      # on cuda:0, under 8 minutes on one H100-class GPU
    python benchmarks/gpu_suite.py --cpu                # the same steps on the CPU, small and quick (CI runs it)
    python benchmarks/gpu_suite.py --out suite.json     # also write every row as JSON (after every step)

On a machine where the package is not installed (a lent GPU machine: no network, its own python3 and torch), the
suite runs it from ``src/`` and only needs kornia, carried as wheels: ``bash benchmarks/gpu_wheels.sh`` here
downloads them into ``.gpu-wheels/`` and prints the command for the machine (docs/benchmarks.md, "GPU suite").

Steps, each a group of rows of the one table printed at the end (each row is also printed as it is made, and a
step that raises or times out becomes a failed row: the other steps still run):

1. ``cuda tests``: pytest on the tests that need CUDA (they skip without it; ``CUDA_TESTS``). On a GPU a skip
   counts as a failure, since it means CUDA was not seen; with ``--cpu`` the skips are expected.
2. ``exactness``: every loss of ``forms.LOSSES`` in float32 at a size the engine covers with several tiles
   (N = 4096 on a GPU; on the CPU N = 640 with tiles shrunk to 64 columns), value and gradients against the plain
   form in float64 on the same features, within ``EXACT_TOLERANCE``: the tiled path and the hard loss's counting
   selection as they run on the device.
3. ``autocast``: every loss (N = 256, d = 128) on bf16 and on fp16 features, forward and
   backward inside ``torch.autocast``, against the plain form in float64 on the same (rounded) features. Passes
   when the value and every gradient are finite, the value is within ``VALUE_TOLERANCE`` of the float64 one
   (relative, or absolute below 1: the losses compute in float32 whatever the features' dtype), and the gradient,
   returned in the features' dtype, is within ``GRADIENT_TOLERANCE[dtype]`` of the float64 one (max abs
   difference over max abs value: a few units of the dtype's rounding, 2^-8 for bf16, 2^-11 for fp16).
4. ``ratio``: benchmarks/run.py's rows for every loss, with the untiled engine (the whole matrix in one tile) as
   a further baseline: ours / plain, GEMM-equivalents beside their floor, ours / untiled, peak memory. On a GPU a
   timed sample is 10 calls back to back (one call of a small kernel is mostly launch and synchronisation).
5. ``training``: ``aligniform train`` on digits, 2 epochs (1 with ``--cpu``), its wall time and kNN accuracy.

Exit status 1 when a check failed (the ratios are reported, not judged: compare.py judges them).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def _run_from_source() -> None:
    """Without an installed package (a lent GPU machine), import it, here and in the subprocesses, from ``src/``."""
    try:
        import aligniform  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO / "src"))
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))


_run_from_source()

import run as bench_run  # noqa: E402  (after the path set-up)
from aligniform._io import write_json  # noqa: E402
from forms import LOSSES, LossForm, batch  # noqa: E402

CUDA_TESTS = [  # every test that skips (or takes another branch) without CUDA
    "tests/test_device.py",
    "tests/test_augment.py::test_cuda_matches_cpu_parameters",
    "tests/distributed/test_batchnorm.py::test_convert_sync_batchnorm_on_cpu_and_gpu",
    "tests/distributed/test_context.py::test_single_process_context",
]
TEST_TIMEOUT, TRAINING_TIMEOUT = 180, 180  # seconds for the pytest and the training subprocesses
#: Seconds the whole suite may take on a GPU (a lent machine's command gets at most 600): a step that would start
#: later is not run, and no subprocess outlives it (see :func:`bounded`).
GPU_BUDGET = 480
_deadline = float("inf")  # time.monotonic() at which the suite's budget is spent


def bounded(command: list[str], limit: float) -> subprocess.CompletedProcess:
    """``command`` run in ``REPO`` with its output captured, killed with all its children after ``limit`` seconds.

    The limit is also cut to what is left of the suite's budget. A child gets its own process group, so the workers
    a test spawns die with it (``subprocess.run``'s timeout kills the child only).
    """
    timeout = max(1.0, min(limit, _deadline - time.monotonic()))
    with subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


#: float32 against float64: value relative (absolute below 1), gradients over the largest float64 gradient.
EXACT_TOLERANCE = {"value": 1e-5, "gradient": 1e-4}
VALUE_TOLERANCE = 1e-4
GRADIENT_TOLERANCE = {torch.bfloat16: 1e-2, torch.float16: 2e-3}  # measured on CPU: 2.7e-3 and 3.4e-4
AUTOCAST_N, DIM = 256, 128


@dataclass
class Row:
    step: str
    item: str
    ok: bool | None  # None: a measurement, not a check
    detail: str
    seconds: float = 0.0


def cuda_tests(on_gpu: bool) -> list[Row]:
    started = time.perf_counter()
    serial = ["-n", "0"] if importlib.util.find_spec("xdist") else []  # pytest-xdist off, where it is installed
    command = [sys.executable, "-m", "pytest", *serial, "-p", "no:cacheprovider", "-rs", *CUDA_TESTS]
    result = bounded(command, TEST_TIMEOUT)
    counts = [line for line in result.stdout.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)]
    summary = counts[-1].strip("= ") if counts else (result.stdout + result.stderr).strip()[-200:]
    skipped = int(match.group(1)) if (match := re.search(r"(\d+) skipped", summary)) else 0
    ok = result.returncode == 0 and not (on_gpu and skipped)
    if not ok:
        print(result.stdout[-4000:], result.stderr[-2000:], sep="\n")
    return [Row("cuda tests", f"{len(CUDA_TESTS)} files/tests", ok, summary, time.perf_counter() - started)]


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b).abs().max() / b.abs().max().clamp(min=1e-30))


def _float64_reference(
    form: LossForm, x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor, value: torch.Tensor, ours: tuple
) -> tuple[float, float, list[tuple[torch.Tensor | None, torch.Tensor]]]:
    """The plain form in float64 on ``x``, ``y``, against ``value``, the loss ours gave on the leaves ``ours``.

    Returns the float64 value, the value's error (relative, absolute below 1) and the (gradient, float64 gradient)
    pairs of the inputs the plain form differentiates.
    """
    a64, b64 = x.double().requires_grad_(), y.double().requires_grad_()
    reference = form.plain(a64, b64, labels)
    reference.backward()
    reference_value = float(reference.detach())
    value_error = abs(float(value.detach()) - reference_value) / max(1.0, abs(reference_value))
    pairs = [(g.grad, r.grad) for g, r in zip(ours, (a64, b64), strict=True) if r.grad is not None]
    return reference_value, value_error, pairs


def exactness_rows(device: torch.device, n: int, small_tiles: bool) -> list[Row]:
    """Every loss in float32 against its plain form in float64, at a size the engine tiles (see the steps above)."""
    x, y, labels = batch(n, DIM, device)
    holders = bench_run.tile_holders()

    def shrink() -> contextlib.AbstractContextManager[None]:
        return bench_run.tiles(holders, lambda _: 64 * 64, lambda _: 64) if small_tiles else contextlib.nullcontext()

    rows = []
    for name, form in LOSSES.items():
        started = time.perf_counter()
        a, b = x.clone().requires_grad_(), y.clone().requires_grad_()
        with shrink():
            value = form.ours(a, b, labels)
            value.backward()
        reference, value_error, pairs = _float64_reference(form, x, y, labels, value, (a, b))
        value = value.detach()
        gradient_error = max(_relative(g, r) if g is not None else float("inf") for g, r in pairs)
        ok = value_error <= EXACT_TOLERANCE["value"] and gradient_error <= EXACT_TOLERANCE["gradient"]
        detail = (
            f"value {float(value):.6f} vs {reference:.6f}: error {value_error:.1e} "
            f"(tol {EXACT_TOLERANCE['value']:.0e}); gradient error {gradient_error:.1e} "
            f"(tol {EXACT_TOLERANCE['gradient']:.0e})"
        )
        rows.append(Row("exactness", f"{name} N={n}", ok, detail, time.perf_counter() - started))
        del a, b, value, pairs
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def autocast_rows(device: torch.device) -> list[Row]:
    x, y, labels = batch(AUTOCAST_N, DIM, device)
    rows = []
    for dtype, tolerance in GRADIENT_TOLERANCE.items():
        low_x, low_y = x.to(dtype), y.to(dtype)
        for name, form in LOSSES.items():
            started = time.perf_counter()
            a, b = low_x.clone().requires_grad_(), low_y.clone().requires_grad_()
            with torch.autocast(device.type, dtype=dtype):
                value = form.ours(a, b, labels)
            value.backward()
            value = value.detach()
            reference, value_error, gradients = _float64_reference(form, low_x, low_y, labels, value, (a, b))
            finite = bool(torch.isfinite(value)) and all(
                g is not None and bool(g.isfinite().all()) for g, _ in gradients
            )
            gradient_error = max(_relative(g, r) for g, r in gradients if g is not None) if finite else float("nan")
            ok = finite and value_error <= VALUE_TOLERANCE and gradient_error <= tolerance
            detail = (
                f"value {float(value):.6f} vs {reference:.6f}: error {value_error:.1e} "
                f"(tol {VALUE_TOLERANCE:.0e}); "
                f"gradient error {gradient_error:.1e} (tol {tolerance:.0e}); finite {finite}"
            )
            item = f"{str(dtype).removeprefix('torch.')} {name}"
            rows.append(Row("autocast", item, ok, detail, time.perf_counter() - started))
    return rows


def ratio_rows(device: torch.device, ns: list[int], repeats: int) -> list[Row]:
    started = time.perf_counter()
    names = list(LOSSES)
    measured = bench_run.time_rows(names, ns, [1], repeats, DIM, device, untiled_too=True)
    rows, peaks = [], {}
    # Each memory process gets its share of what is left of the suite's budget, at most run.py's own limit.
    share = (_deadline - time.monotonic()) / len(ns)
    timeout = max(1.0, min(bench_run.MEMORY_TIMEOUT, share))
    try:  # the timings stand without the memory processes
        peaks = bench_run.measure_memory(names, ns, DIM, device, timeout=timeout)
    except (subprocess.SubprocessError, OSError, ValueError, IndexError) as error:
        rows.append(Row("ratio", "peak memory", False, " ".join(f"{type(error).__name__}: {error}".split())[:400]))
    for row in measured:
        peak = peaks.get(row["n"], {}).get(row["loss"])
        memory = f"peak {peak['ours']:.0f} MiB (plain {peak['plain']:.0f})" if peak else "peak not measured"
        detail = (
            f"ours/plain {row['ratio_to_plain']:.3f}, {row['gemm_equivalents']:.2f} GEMMs "
            f"(floor {row['floor_gemm_equivalents']:.2f}), ours/untiled {row['untiled_ratio']:.2f}, "
            f"{row['ms']:.2f} ms, {memory}"
        )
        rows.append(Row("ratio", f"{row['loss']} N={row['n']}", None, detail))
    calls = bench_run.CUDA_CALLS if device.type == "cuda" else 1
    detail = f"the rows above: N {ns}, {repeats} rounds of {calls} call(s), memory in {len(ns)} fresh process(es)"
    rows.append(Row("ratio", "all losses", None, detail, time.perf_counter() - started))
    return rows


def training_row(device: torch.device, epochs: int, batch_size: int) -> Row:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "aligniform", "train", "--dataset", "digits", "--epochs", str(epochs)]
        command += ["--batch-size", str(batch_size), "--dim", "16", "--linear-probe", "short", "--no-progress"]
        command += ["--device", device.type, "--out", os.path.join(out, "run")]
        result = bounded(command, TRAINING_TIMEOUT)
        results_file = Path(out, "run", "results.json")
        results = json.loads(results_file.read_text()) if results_file.exists() else {}
    ok = result.returncode == 0 and results.get("knn_acc", 0) > 0.5  # chance is 0.1; one epoch gives > 0.9
    if not ok:
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
    detail = f"digits, {epochs} epoch(s), batch {batch_size}: exit {result.returncode}"
    if results:
        detail += f", kNN accuracy {results['knn_acc']:.3f}, train {results['train_seconds']:.1f} s"
    return Row("training", f"aligniform train --device {device.type}", ok, detail, time.perf_counter() - started)


def table(rows: list[Row], header: bool = True) -> str:
    status = {True: "ok", False: "FAIL", None: "-"}
    width = max(len(row.item) for row in rows)
    lines = [f"{'step':<10} {'item':<{width}} {'status':<6} {'s':>6}  detail"] if header else []
    for r in rows:
        seconds = f"{r.seconds:6.1f}" if r.seconds else " " * 6
        lines.append(f"{r.step:<10} {r.item:<{width}} {status[r.ok]:<6} {seconds}  {r.detail}")
    return "\n".join(lines)


def header(device: torch.device) -> str:
    """What the numbers depend on: torch, the device, TF32 (the exactness tolerances assume it off), kornia."""
    try:
        import kornia

        kornia_version = kornia.__version__
    except ImportError:
        kornia_version = "not installed (the cuda tests and the training step need it: benchmarks/gpu_wheels.sh)"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    tf32 = f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN {torch.backends.cudnn.allow_tf32}"
    return (
        f"torch {torch.__version__}, {name}, python {sys.version.split()[0]}; {tf32}, float32 matmul precision "
        f"{torch.get_float32_matmul_precision()}; kornia {kornia_version}"
    )


def run_step(step: str, make_rows: Callable[[], list[Row]]) -> list[Row]:
    """The step's rows, each printed as it comes; an exception (a timeout too) becomes one failed row."""
    started = time.perf_counter()
    try:
        rows = make_rows()
    except Exception as error:  # one step's failure must not cost the others' results
        message = " ".join(f"{type(error).__name__}: {error}".split())[:400]
        rows = [Row(step, "error", False, message, time.perf_counter() - started)]
    for row in rows:
        print(table([row], header=False), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="run every step on the CPU, small (for CI)")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON (rewritten after every step)")
    parser.add_argument(
        "--budget",
        type=float,
        help=f"seconds the suite may take: later steps are not run, no subprocess outlives it (GPU default "
        f"{GPU_BUDGET}, CPU none)",
    )
    args = parser.parse_args(argv)
    global _deadline
    if args.cpu:
        device, ns, repeats, epochs, batch_size, exact_n = torch.device("cpu"), [128], 2, 1, 256, 640
    elif torch.cuda.is_available():
        device, ns, repeats, epochs, batch_size, exact_n = torch.device("cuda", 0), [1024, 4096], 5, 2, 256, 4096
    else:
        parser.error("no CUDA device is visible; use --cpu for the CPU run")
    started = time.perf_counter()
    budget = args.budget if args.budget is not None else (GPU_BUDGET if device.type == "cuda" else None)
    _deadline = time.monotonic() + budget if budget is not None else float("inf")
    try:
        print(header(device), flush=True)
    except Exception as error:  # the header is for reading; the steps still run
        print(f"torch {torch.__version__}, {device}; header incomplete: {type(error).__name__}: {error}", flush=True)
    steps: list[tuple[str, Callable[[], list[Row]]]] = [
        ("cuda tests", lambda: cuda_tests(on_gpu=device.type == "cuda")),
        ("exactness", lambda: exactness_rows(device, exact_n, small_tiles=device.type == "cpu")),
        ("autocast", lambda: autocast_rows(device)),
        ("ratio", lambda: ratio_rows(device, ns, repeats)),
        ("training", lambda: [training_row(device, epochs, batch_size)]),
    ]
    rows: list[Row] = []
    try:
        run_steps(steps, rows, budget, args.out)
    finally:
        _deadline = float("inf")
    print()
    print(table(rows))
    failed = [row for row in rows if row.ok is False]
    print(f"\n{len(failed)} failed check(s); total {time.perf_counter() - started:.0f} s")
    return 1 if failed else 0


def run_steps(
    steps: list[tuple[str, Callable[[], list[Row]]]], rows: list[Row], budget: float | None, out: Path | None
) -> None:
    """Each step's rows into ``rows`` (and ``out``, rewritten after each step); none started past the deadline."""
    for step, make_rows in steps:
        if time.monotonic() >= _deadline:
            late = Row(step, "not run", False, f"the suite's budget of {budget or 0:.0f} s was spent before this step")
            rows += run_step(step, lambda late=late: [late])
        else:
            rows += run_step(step, make_rows)
        if out:  # atomically: a run killed at the device's limit leaves the last whole file
            write_json(out, [asdict(row) for row in rows])


if __name__ == "__main__":
    sys.exit(main())
