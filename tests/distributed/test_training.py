"""Real multi-process training through torchrun (gloo on CPU) against one process on the same global batch."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from aligniform.train import load_checkpoint

pytestmark = pytest.mark.slow

# Augmentation "none": two processes draw their own random augmentations, so only deterministic
# views let a 2-process run and a 1-process run see the very same global batches.
COMMON = [
    "train",
    "--dataset",
    "digits",
    "--batch-size",
    "128",
    "--dim",
    "16",
    "--no-progress",
    "--linear-probe",
    "none",
    "--augmentation",
    "none",
    "--seed",
    "5",
    "--sync-bn",
    "--objective",
    "contrastive(tau=0.5) + uniform(t=2)",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _single(out, epochs, *extra):
    return [sys.executable, "-m", "aligniform", *COMMON, "--epochs", str(epochs), "--out", str(out), *extra]


def _torchrun(out, epochs, *extra):
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "aligniform",
        *COMMON,
        "--epochs",
        str(epochs),
        "--out",
        str(out),
        *extra,
    ]


def _run(command):
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def _weights(out):
    return load_checkpoint(out / "checkpoint.pt")["model"]


def noise_imagefolder(root, per_class=120, size=12):
    """Random-pixel images in two classes.

    Why not digits: their constant background puts many activations on one shared value at a ReLU
    kink or in a max-pool tie, so float32 rounding differences in summation order (one process vs.
    two, or merely a reordered batch in one process) flip groups of gates within a few steps. The
    per-step gradients agree to 1e-9 in float64 (test_distributed.py); on this data, at a moderate
    lr, a whole float32 run can be compared: after 6 steps a 2-process run is as close to the
    1-process run (~7e-7) as the same 1-process run with its batch rows reordered.
    """
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("test", per_class // 4)):
        for label in ("a", "b"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_two_process_sync_bn_run_equals_one_process_run(tmp_path):
    data = noise_imagefolder(tmp_path / "images")
    options = ("--dataset", "imagefolder", "--data-dir", str(data), "--batch-size", "64", "--lr", "0.01")
    _run(_single(tmp_path / "one", 2, *options))
    _run(_torchrun(tmp_path / "two", 2, *options))
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert one.keys() == two.keys()
    for key in one:
        if one[key].is_floating_point():
            torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-5, msg=key)
    # rank 0 alone wrote the run's files
    assert (tmp_path / "two" / "results.json").is_file()
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 2
    assert json.loads((tmp_path / "two" / "results.json").read_text()).keys() >= {"knn_acc", "alignment"}


def test_two_process_run_resumes_after_kill(tmp_path):
    _run(_torchrun(tmp_path / "whole", 3))
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        _torchrun(killed, 3), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
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
    result = subprocess.run(
        _single(tmp_path / "run", 2, "--resume"), env=ENV, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2
    assert "written by 2 process(es)" in result.stderr and "Traceback" not in result.stderr
