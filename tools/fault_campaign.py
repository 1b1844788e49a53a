"""Fault campaign: hundreds of bad inputs against every command and the integrations; the contract checked on each.

Usage (from the repository root)::

    PYTHONPATH=src python tools/fault_campaign.py --report campaign.json            # everything (~10 min of CPU)
    PYTHONPATH=src python tools/fault_campaign.py --sample 40 --fake-run             # a deterministic subset

The cases come from ``tools/fault_cases.py`` (command lines: each option × the bad values of its kind) and
``tools/fault_api_cases.py`` (the integrations' constructors and calls). Every command line runs in this
process (``aligniform.cli.main``) inside a workspace of fixtures (a run folder, array files, grids, a FIFO,
links, a non-UTF-8 file, ...), and for each the campaign records the exit code, the lines on stderr, whether a
traceback appeared, and which of the workspace's files changed, vanished or appeared (SHA-256 and mode of
every entry before and after). The contract of a command line: exit 2 with one line on stderr (or exit 0 when
the input is valid after all), no traceback, no file of the workspace changed or removed, and nothing left
behind by a refused command. The contract of an API call: it returns, or raises a ``ValueError`` or
``TypeError`` with a one-line message; it never returns a non-finite number. A summary table per command is
printed and everything is written to the JSON report. The exit code is 1 when a case breaks the contract.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `tools` as a package, run as a script

from tools.fault_cases import Case, cli_cases, resolve  # noqa: E402

#: Seconds a case may take before it counts as hung.
CASE_TIMEOUT_S = 120
#: Commands whose output option is a folder (a file there is the wrong kind); the others write a file.
FOLDER_OUTPUTS = ("analyze", "compare", "sweep", "study", "demo")


class CaseTimeout(BaseException):
    """Raised by the alarm: a BaseException, so no ``except Exception`` of the command turns it into an error line."""


def _fixture_files(root: Path) -> dict[str, bytes | str]:
    """Small fixture files by name (text or bytes)."""
    grid = "base: {dataset: digits, epochs: 1, dim: 8, linear_probe: none, batch_size: 64}\ngrid: {seed: [0, 1]}\n"
    huge = "grid:\n" + "".join(f"  {name}: [1, 2, 3, 4, 5, 6, 7, 8]\n" for name in ("seed", "dim", "epochs", "knn_k"))
    huge += "".join(f"  {name}: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]\n" for name in ("lr", "momentum", "lr_decay"))
    huge += "  weight_decay: [0, 1, 2, 3, 4, 5, 6, 7]\n  warmup_epochs: [0, 1, 2, 3, 4, 5, 6, 7]\n"
    huge += "  queue_size: [1, 2, 3, 4, 5, 6, 7, 8]\n"
    return {
        "file.txt": "a plain file\n",
        "latin1.yaml": "epochs: 1\ntitle: caf\xe9\n".encode("latin-1"),
        "binary.bin": bytes(range(256)) * 4,
        "empty.txt": b"",
        "grid.yaml": grid,
        "empty_grid.yaml": "grid: {lr: []}\n",
        "huge_grid.yaml": huge,
        "out_grid.yaml": "base: {out: elsewhere}\n",
        "list.yaml": "- 1\n- 2\n",
        "unknown.yaml": "bogus: 1\n",
        "dup_grid.yaml": "runs: [{seed: 0}, {seed: 0}]\n",
        "bad.yaml": "epochs: [1\n",
        "epochs_true.yaml": "epochs: true\n",
        "epochs_nan.yaml": "epochs: .nan\n",
        "out_only.yaml": "dataset: digits\nepochs: 1\n",
    }


def _arrays(root: Path) -> None:
    import numpy as np

    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    y = np.roll(x, 1, axis=0)
    np.savez(root / "pairs.npz", x=x, y=y)
    (root / "arrays").mkdir()
    np.save(root / "arrays" / "x.npy", x)
    np.save(root / "arrays" / "y.npy", y)
    bad = x.copy()
    bad[3, 0] = np.nan
    np.savez(root / "nan.npz", x=bad, y=y)
    np.savez(root / "ragged.npz", x=x, y=y[:-1])
    np.savez(root / "onerow.npz", x=x[:1], y=y[:1])
    np.savez(root / "cube.npz", x=x[None], y=y[None])
    np.savez(root / "text.npz", x=np.array(["a", "b"]), y=np.array(["c", "d"]))
    np.savez(root / "badlabels.npz", x=x, y=y, labels=np.arange(7))


def build_workspace(root: Path, run_source: Path) -> dict[str, Path | str]:
    """Create the fixtures in ``root`` (a copy of the run in ``run_source``); return their paths by name."""
    root.mkdir(parents=True)
    for name, content in _fixture_files(root).items():
        (root / name).write_bytes(content.encode() if isinstance(content, str) else content)
    _arrays(root)
    shutil.copytree(run_source, root / "run")
    checkpoint = (root / "run" / "checkpoint.pt").read_bytes()
    (root / "truncated.pt").write_bytes(checkpoint[: len(checkpoint) // 2])
    (root / "folder").mkdir()
    os.mkfifo(root / "fifo")
    (root / "dangling").symlink_to(root / "nowhere")
    (root / "loop").symlink_to(root / "loop2")
    (root / "loop2").symlink_to(root / "loop")
    (root / "readonly").mkdir(mode=0o555)
    fixtures: dict[str, Path | str] = {name: root / name for name in os.listdir(root)}
    fixtures.update(
        {
            "": "",
            "missing": root / "missing.yaml",
            "file.txt/under": root / "file.txt" / "under",
            "toolong": root / ("x" * 300),
            "SINK": root / "file.txt" / "sink",
            "run/checkpoint.pt": root / "run" / "checkpoint.pt",
            "readonly/out": root / "readonly" / "out",
        }
    )
    return fixtures


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every entry under ``root``: a file's SHA-256, a link's target, ``dir`` or ``special``; with its mode bits."""
    entries = {}
    for folder, names, files in os.walk(root):
        for name in names + files:
            path = Path(folder) / name
            status = path.lstat()
            if stat.S_ISLNK(status.st_mode):
                content = "link -> " + os.readlink(path)
            elif stat.S_ISDIR(status.st_mode):
                content = "dir"
            elif stat.S_ISREG(status.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                content = "special"
            entries[str(path.relative_to(root))] = (content, stat.S_IMODE(status.st_mode))
    return entries


def _remove(root: Path) -> None:
    for folder, names, _ in os.walk(root):
        for name in names:
            with contextlib.suppress(OSError):
                os.chmod(Path(folder) / name, 0o755)
    shutil.rmtree(root, ignore_errors=True)


def _on_alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout


def run_cli_case(argv: list[str]) -> dict[str, Any]:
    """Run ``aligniform ARGV`` in this process: exit code, stderr, whether a traceback escaped, seconds."""
    from aligniform.cli import main

    err, out = io.StringIO(), io.StringIO()
    escaped = None
    started = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(CASE_TIMEOUT_S)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("always")  # each case as in a fresh process: a warning is shown, not remembered
            try:
                code: Any = main(argv)
            except SystemExit as exit:
                code = exit.code
            except CaseTimeout:
                code, escaped = "timeout", "CaseTimeout"
            except Exception:
                code, escaped = "exception", traceback.format_exc()
                print(escaped, file=err)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return {"exit": code, "stderr": err.getvalue(), "escaped": escaped, "seconds": time.perf_counter() - started}


def check_cli(result: dict[str, Any], before: dict, after: dict) -> dict[str, Any]:
    """The contract's verdict on one command line: the problems found (empty: it holds)."""
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    changed = sorted(name for name in before if name in after and after[name] != before[name])
    removed = sorted(name for name in before if name not in after)
    created = sorted(name for name in after if name not in before)
    problems = []
    if result["exit"] not in (0, 2):
        problems.append(f"exit {result['exit']}")
    if "Traceback" in result["stderr"] or result["escaped"]:
        problems.append("traceback")
    if result["exit"] == 2 and len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr")
    if changed or removed:
        problems.append(f"changed {changed + removed}")
    if created and result["exit"] != 0:
        problems.append(f"left {created}")
    return {"lines": len(lines), "changed": changed, "removed": removed, "created": created, "problems": problems}


def run_cli(cases: list[Case], work: Path, run_source: Path) -> list[dict[str, Any]]:
    """Run every case in a workspace rebuilt whenever a case changed it."""
    root = work / "workspace"
    fixtures = build_workspace(root, run_source)
    before = snapshot(root)
    records = []
    for index, case in enumerate(cases):
        kind = "file.txt" if case.command.split()[0] in FOLDER_OUTPUTS else "folder"
        paths = {**fixtures, "folder_or_file": fixtures[kind]}
        argv = resolve(case.argv, {name: Path(p) if p else "" for name, p in paths.items()}, root / f"new_{index}")
        previous = os.getcwd()
        os.chdir(root)  # a relative default (`runs/run`, `report.html`) lands in the workspace
        try:
            result = run_cli_case(argv)
        finally:
            os.chdir(previous)
        after = snapshot(root)
        verdict = check_cli(result, before, after)
        first_line = (result["stderr"].strip().splitlines() or [""])[0] if result["exit"] == 2 else ""
        records.append(
            {
                "command": case.command,
                "label": case.label,
                "argv": [part.replace(str(root), "WS") for part in argv],
                "exit": result["exit"],
                "stderr_lines": verdict["lines"],
                "traceback": "traceback" in verdict["problems"],
                "changed": verdict["changed"] + verdict["removed"],
                "created": verdict["created"],
                "message": first_line.replace(str(root), "WS")[:400],
                "problems": verdict["problems"],
                "seconds": round(result["seconds"], 2),
                "stderr": result["stderr"][-2000:].replace(str(root), "WS") if verdict["problems"] else "",
            }
        )
        if after != before:  # the next case starts from the same fixtures
            _remove(root)
            fixtures = build_workspace(root, run_source)
            before = snapshot(root)
    return records


def run_api(cases: list[tuple[str, str, Any]]) -> list[dict[str, Any]]:
    """Call every API case; the contract: a result with finite numbers, or a one-line ValueError / TypeError."""
    records = []
    for integration, label, call in cases:
        problems, outcome = [], "returned"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                value = call()
                if _non_finite(value):
                    problems.append("non-finite result")
            except (ValueError, TypeError) as error:
                outcome = f"{type(error).__name__}: {error}"
                if len(str(error).strip().splitlines()) != 1:
                    problems.append("message not one line")
            except Exception as error:  # the contract's breach: report it, do not stop the campaign
                outcome = f"{type(error).__name__}: {error}"
                problems.append(f"raised {type(error).__name__}")
        records.append(
            {
                "command": integration,
                "label": label,
                "outcome": outcome.splitlines()[0][:400] if outcome else "",
                "problems": problems,
            }
        )
    return records


def _non_finite(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_non_finite(item) for item in value.values())
    if isinstance(value, float):
        return not math.isfinite(value)
    try:
        import torch

        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return not bool(torch.isfinite(value).all())
    except ImportError:
        pass
    return False


def train_run(folder: Path) -> Path:
    """A real run folder for the fixtures: digits, one epoch, an 8-d encoder (about 20 s of CPU)."""
    from aligniform.cli import main

    argv = ["train", "--dataset", "digits", "--epochs", "1", "--dim", "8", "--batch-size", "64"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main([*argv, "--linear-probe", "none", "--no-progress", "--out", str(folder)])
    if code != 0:
        raise SystemExit(f"fault campaign: could not train the fixture run into {folder} (exit {code})")
    return folder


def fake_run(folder: Path) -> Path:
    """A run folder whose checkpoint is not one (enough for a subset: every case reads it as corrupt)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("dataset: digits\nepochs: 1\ndim: 8\n")
    (folder / "checkpoint.pt").write_bytes(b"not really a checkpoint" * 10)
    (folder / "metrics.jsonl").write_text('{"epoch": 1, "loss": 0.5}\n')
    (folder / "results.json").write_text('{"knn_acc": 0.5}\n')
    return folder


def select(cases: list[Any], sample: int | None) -> list[Any]:
    """All cases, or ``sample`` of them spread evenly over the list (the same ones every time)."""
    if not sample or sample >= len(cases):
        return cases
    step = len(cases) / sample
    return [cases[int(index * step)] for index in range(sample)]


def summary_table(records: list[dict[str, Any]]) -> str:
    """One row per command: cases, exit 0 / exit 2 (or returned / refused), and the cases breaking the contract."""
    rows: dict[str, Counter] = defaultdict(Counter)
    for record in records:
        row = rows[record["command"]]
        row["cases"] += 1
        if "exit" in record:
            row["ok (exit 0)"] += record["exit"] == 0
            row["refused (exit 2)"] += record["exit"] == 2
        else:
            row["ok (exit 0)"] += record["outcome"] == "returned"
            row["refused (exit 2)"] += record["outcome"] != "returned"
        row["broken"] += bool(record["problems"])
    columns = ("cases", "ok (exit 0)", "refused (exit 2)", "broken")
    lines = [f"{'command':<28}" + "".join(f"{name:>18}" for name in columns)]
    for command in rows:
        lines.append(f"{command:<28}" + "".join(f"{rows[command][name]:>18}" for name in columns))
    total = Counter()
    for row in rows.values():
        total.update(row)
    lines.append(f"{'total':<28}" + "".join(f"{total[name]:>18}" for name in columns))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    parser.add_argument("--sample", type=int, help="run this many CLI cases and this many API cases, spread evenly")
    parser.add_argument("--fake-run", action="store_true", help="a fake run folder instead of training one (~20 s)")
    parser.add_argument(
        "--only", help="run only the CLI cases of commands starting with one of these (comma-separated: 'study,eval')"
    )
    parser.add_argument("--no-api", action="store_true", help="skip the API cases")
    args = parser.parse_args(argv)
    from tools.fault_api_cases import api_cases

    prefixes = tuple(args.only.split(",")) if args.only else ("",)
    cli = [case for case in cli_cases() if case.command.startswith(prefixes)]
    api = [] if args.no_api or args.only else api_cases()
    cli, api = select(cli, args.sample), select(api, args.sample)
    work = Path(tempfile.mkdtemp(prefix="aligniform-campaign-"))
    try:
        source = fake_run(work / "source") if args.fake_run else train_run(work / "source")
        records = run_cli(cli, work, source) + run_api(api)
    finally:
        _remove(work)
    print(summary_table(records))
    broken = [record for record in records if record["problems"]]
    for record in broken:
        print(f"BROKEN {record['command']} {record['label']}: {', '.join(record['problems'])}")
    if args.report:
        report = {"cases": len(records), "cli": len(cli), "api": len(api), "broken": len(broken), "records": records}
        args.report.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
