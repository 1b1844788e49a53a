"""The Lightning and Hugging Face callbacks across 2 gloo processes log what one process logs on the same global data.

Each framework trains twice under torchrun (tests/integrations/distributed_run.py): 1 process on the whole batch,
2 processes on half of it each. DDP averages the two halves' gradients into the whole batch's gradient, so the weights
agree up to float32 summation order, and so must every logged measurement.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("distributed_run.py")
REL = 1e-5  # float32 training: the gradient all-reduce sums in another order than one process does


def run(framework, processes, tmp_path):
    out = tmp_path / f"{framework}_{processes}.json"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
        str(SCRIPT), framework, str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return json.loads(out.read_text(encoding="utf-8"))


def assert_same_numbers(one, two):
    assert set(one) == set(two)
    for key, value in one.items():
        if isinstance(value, float):
            assert two[key] == pytest.approx(value, rel=REL, abs=1e-7), key
        else:
            assert two[key] == value, key


@pytest.mark.slow
def test_lightning_two_processes_log_what_one_process_logs(tmp_path):
    pytest.importorskip("lightning", reason="lightning is not installed (extra: integrations)")
    one, two = run("lightning", 1, tmp_path), run("lightning", 2, tmp_path)
    # A step-wise measurement at each of the 3 steps; each epoch's end and validation reuse it (the same weights).
    assert [(entry["epoch"], entry["step"]) for entry in one["history"]] == [(0, 1), (1, 2), (2, 3)]
    assert len(two["history"]) == len(one["history"])
    for mine, theirs in zip(one["history"], two["history"]):
        assert_same_numbers(mine, theirs)
    assert_same_numbers(one["callback_metrics"], two["callback_metrics"])
    assert {"hypersphere/alignment", "val_hypersphere/alignment", "val_loss"} <= set(one["callback_metrics"])
    assert two["callback_metrics"]["val_hypersphere/uniformity"] == two["history"][-1]["hypersphere/uniformity"]


@pytest.mark.slow
def test_transformers_two_processes_log_what_one_process_logs(tmp_path):
    pytest.importorskip("transformers", reason="transformers is not installed (extra: integrations)")
    pytest.importorskip("accelerate", reason="accelerate (needed by transformers.Trainer) is not installed")
    one, two = run("transformers", 1, tmp_path), run("transformers", 2, tmp_path)
    # Steps 1 and 3 measured in training, 2 and 4 at the evaluations.
    assert [entry["step"] for entry in one["history"]] == [1, 2, 3, 4]
    for mine, theirs in zip(one["history"], two["history"], strict=True):
        assert_same_numbers(mine, theirs)
    keep = ("loss", "hypersphere/alignment", "hypersphere/uniformity", "eval_hypersphere/alignment", "step")

    def logged(result):
        return [{key: value for key, value in entry.items() if key in keep} for entry in result["log_history"]]

    assert [entry["step"] for entry in logged(one) if "loss" in entry] == [1, 2, 3, 4]  # the Trainer's own log
    assert [entry["step"] for entry in logged(one) if "hypersphere/alignment" in entry] == [1, 3]
    assert [entry["step"] for entry in logged(one) if "eval_hypersphere/alignment" in entry] == [2, 4]
    for mine, theirs in zip(logged(one), logged(two), strict=True):
        assert_same_numbers(mine, theirs)
