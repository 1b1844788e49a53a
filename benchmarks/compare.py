"""Compare a results file of benchmarks/run.py against the baseline, by ratio; exit 1 on a regression.

Usage:
    python benchmarks/compare.py NEW BASELINE [--tolerance 0.3] [--memory-slack-mib 16]
    python benchmarks/compare.py benchmarks/results.json benchmarks/baseline.json

Rows are matched by (loss, N, threads, device); rows only one file holds are listed, not judged. Times are never
compared, only ratios measured within one process (timings on a shared machine vary by ±30 %, the ratios much less):

* ``ratio_to_plain`` and ``gemm_equivalents`` (lower is better) regress when new > baseline × (1 + tolerance);
* ``peak_mib`` regresses when it grows by more than the tolerance *and* by more than ``--memory-slack-mib``
  (the resident-set sampler's few MiB of noise at small N);
* the training loop's ``ratio`` (loop / bare step) and ``loop_ratio`` (``Trainer.fit`` / a bare loop), higher is
  better, regress when new < baseline / (1 + tolerance).

Both files' ``meta.allocator`` (run.py's ``--allocator``; a file without it was measured with glibc as is) should
match: with page faults charged per call the small-N ratios differ by up to 0.3, so a mismatch is reported first.

Exit status: 0 when nothing regressed (also when the baseline holds no rows yet), 1 when something did.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

LOWER_IS_BETTER = ("ratio_to_plain", "gemm_equivalents", "peak_mib")


def _key(row: dict) -> tuple:
    return (row["loss"], row["n"], row["threads"], row.get("device", "cpu"))


def _training_key(entry: dict) -> tuple:
    return (entry["dataset"], entry["model"], entry["batch_size"], entry["threads"], entry.get("device", "cpu"))


def regressed(metric: str, new: float, old: float, tolerance: float, memory_slack_mib: float) -> bool:
    """Whether ``new`` is worse than ``old`` beyond the tolerance (see the module's docstring).

    Examples:
        >>> regressed("ratio_to_plain", 0.50, 0.40, tolerance=0.3, memory_slack_mib=16)
        False
        >>> regressed("ratio_to_plain", 0.53, 0.40, tolerance=0.3, memory_slack_mib=16)
        True
        >>> regressed("peak_mib", 9.0, 2.0, tolerance=0.3, memory_slack_mib=16)
        False
        >>> regressed("training_ratio", 0.60, 0.90, tolerance=0.3, memory_slack_mib=16)
        True
    """
    if metric in LOWER_IS_BETTER:
        worse = new > old * (1 + tolerance)
        return worse and (metric != "peak_mib" or new - old > memory_slack_mib)
    return new < old / (1 + tolerance)


def compare(new: dict, baseline: dict, tolerance: float, memory_slack_mib: float) -> tuple[list[str], int]:
    """The printed lines and the number of regressions of ``new`` against ``baseline``."""
    lines, regressions = [], 0
    old_allocator, new_allocator = (side.get("meta", {}).get("allocator", "default") for side in (baseline, new))
    old_kind = old_allocator.split()[0]  # "steady" or "default", then what was set
    if old_kind != new_allocator.split()[0]:
        lines.append(
            f"allocators differ: baseline {old_allocator!r}, new {new_allocator!r}; small-N ratios are not comparable "
            f"(rerun with `run.py --allocator {old_kind}`)"
        )
    old_rows = {_key(row): row for row in baseline.get("rows", [])}
    new_rows = {_key(row): row for row in new.get("rows", [])}
    pairs: list[tuple[str, dict, dict, tuple[str, ...]]] = [
        (f"{k[0]} N={k[1]} threads={k[2]} {k[3]}", old_rows[k], new_rows[k], LOWER_IS_BETTER)
        for k in new_rows
        if k in old_rows
    ]
    old_training = {_training_key(entry): entry for entry in baseline.get("training", [])}
    for entry in new.get("training", []):
        key = _training_key(entry)
        if key in old_training:
            label = f"training {key[0]}/{key[1]} batch {key[2]} threads={key[3]} {key[4]}"
            # The step ratio, and the whole loop's (Trainer.fit against a bare loop) where both files have it.
            before, after = (
                {
                    "training_ratio": side["ratio"],
                    **({"loop_ratio": side["loop_ratio"]} if "loop_ratio" in side else {}),
                }
                for side in (old_training[key], entry)
            )
            monitoring = [
                (side.get("loop_validate_every", 1), side.get("loop_epochs")) for side in (old_training[key], entry)
            ]
            if monitoring[0] != monitoring[1] and "loop_ratio" in before and "loop_ratio" in after:
                # A loop monitored at another cadence spends another share on monitoring: not a regression.
                del before["loop_ratio"], after["loop_ratio"]
                lines.append(
                    f"{label}: loop_ratio not compared, the loops differ (monitoring every, epochs): baseline "
                    f"{monitoring[0]}, new {monitoring[1]}"
                )
            pairs.append((label, before, after, ("training_ratio", "loop_ratio")))
    lines.append(f"{'row':<52} {'metric':<17} {'baseline':>9} {'new':>9} {'change':>8}")
    for label, old, row, metrics in pairs:
        for metric in metrics:
            if metric not in old or metric not in row:
                continue
            before, after = float(old[metric]), float(row[metric])
            change = after / before - 1 if before else float("inf") if after else 0.0
            bad = regressed(metric, after, before, tolerance, memory_slack_mib)
            regressions += bad
            flag = "  REGRESSION" if bad else ""
            lines.append(f"{label:<52} {metric:<17} {before:9.3f} {after:9.3f} {change:+8.1%}{flag}")
    only_new = sorted(set(new_rows) - set(old_rows))
    only_old = sorted(set(old_rows) - set(new_rows))
    if only_new:
        lines.append(f"{len(only_new)} row(s) not in the baseline (not judged): {_keys(only_new)}")
    if only_old:
        lines.append(f"{len(only_old)} baseline row(s) not in the new run: {_keys(only_old)}")
    if not old_rows:
        lines.append("the baseline holds no rows yet: regenerate it with `make bench` on a quiet machine")
    lines.append(f"{regressions} regression(s) beyond a tolerance of {tolerance:.0%}")
    return lines, regressions


def _keys(keys: list[tuple]) -> str:
    shown = ", ".join(f"{k[0]} N={k[1]} t={k[2]}" for k in keys[:6])
    return shown + (", ..." if len(keys) > 6 else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("new", type=Path, help="a results file of benchmarks/run.py")
    parser.add_argument("baseline", type=Path, help="the baseline (benchmarks/baseline.json)")
    parser.add_argument("--tolerance", type=float, default=0.3, help="allowed relative worsening (default 0.3)")
    parser.add_argument("--memory-slack-mib", type=float, default=16.0, help="peak-memory growth always allowed")
    args = parser.parse_args(argv)
    new, baseline = (json.loads(path.read_text()) for path in (args.new, args.baseline))
    lines, regressions = compare(new, baseline, args.tolerance, args.memory_slack_mib)
    print("\n".join(lines))
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
