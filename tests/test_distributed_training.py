"""Real multi-process training through torchrun (gloo on CPU) against one process on the same global batch."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from aligniform.train import load_checkpoint

pytestmark = pytest.mark.slow

# Augmentation "none": two processes draw their own random augmentations, so only deterministic
# views let a 2-process run and a 1-process run see the very same global batches.
COMMON = ["train", "--dataset", "digits", "--batch-size", "128", "--dim", "16", "--no-progress",
          "--linear-probe", "none", "--augmentation", "none", "--seed", "5", "--sync-bn",
          "--objective", "contrastive(tau=0.5) + uniform(t=2)"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _single(out, epochs, *extra):
    return [sys.executable, "-m", "aligniform", *COMMON, "--epochs", str(epochs), "--out", str(out), *extra]


def _torchrun(out, epochs, *extra):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "aligniform", *COMMON, "--epochs", str(epochs), "--out", str(out), *extra]


def _run(command):
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def _weights(out):
    return load_checkpoint(out / "checkpoint.pt")["model"]


def test_two_process_sync_bn_run_equals_one_process_run(tmp_path):
    # A short run (3 steps of 256). Longer runs drift apart by more than float32 rounding: digits
    # are full of exact zeros, so max-pool windows hold ties, and a rounding-level difference in
    # summation order can route a gradient to another element of the window (seen from step 4 on).
    gentle = ("--batch-size", "256", "--val-fraction", "0.4", "--lr", "0.02", "--momentum", "0.5")
    _run(_single(tmp_path / "one", 1, *gentle))
    _run(_torchrun(tmp_path / "two", 1, *gentle))
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert one.keys() == two.keys()
    for key in one:
        if one[key].is_floating_point():
            torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-5, msg=key)
    # rank 0 alone wrote the run's files
    assert (tmp_path / "two" / "results.json").is_file()
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 1
    assert json.loads((tmp_path / "two" / "results.json").read_text())["knn_acc"] > 0.3


def test_two_process_run_resumes_after_kill(tmp_path):
    _run(_torchrun(tmp_path / "whole", 3))
    killed = tmp_path / "killed"
    process = subprocess.Popen(_torchrun(killed, 3), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    metrics = killed / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the launcher and both workers, at once
    process.wait()
    assert load_checkpoint(killed / "checkpoint.pt")["epoch"] < 3
    _run(_torchrun(killed, 3, "--resume"))
    whole, resumed = _weights(tmp_path / "whole"), _weights(killed)
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


def test_resume_with_other_process_count_is_refused(tmp_path):
    _run(_torchrun(tmp_path / "run", 1))
    result = subprocess.run(_single(tmp_path / "run", 2, "--resume"), env=ENV, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2
    assert "written by 2 process(es)" in result.stderr and "Traceback" not in result.stderr
