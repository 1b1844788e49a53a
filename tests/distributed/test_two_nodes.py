"""Two torchrun "nodes" on this machine (two launchers, --nnodes 2, c10d rendezvous on localhost, gloo).

Each launcher stands for one machine of a multi-node job: its own `torchrun` process, its own node rank, one worker.
The run they train together must equal one process on the same global batch, and a killed two-node run must resume
bit for bit, as docs/distributed.md promises for `--nnodes=N`.
"""

import os
import signal
import socket
import subprocess
import sys

import pytest
import torch

from aligniform.train import load_checkpoint

from .test_training import COMMON, ENV, _run, _single, _weights, noise_imagefolder

pytestmark = pytest.mark.slow


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _node(node_rank, port, job, out, epochs, *extra):
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc_per_node=1",
        f"--node_rank={node_rank}",
        f"--rdzv_id={job}",
        "--rdzv_backend=c10d",
        f"--rdzv_endpoint=127.0.0.1:{port}",
        "-m",
        "aligniform",
        *COMMON,
        "--epochs",
        str(epochs),
        "--out",
        str(out),
        *extra,
    ]


def _start_nodes(job, out, epochs, *extra, node0_env=None):
    """Both launchers, node 0 first (it hosts the c10d store); each in its own session so a kill takes its workers."""
    port = _free_port()
    return [
        subprocess.Popen(
            _node(rank, port, job, out, epochs, *extra),
            env={**ENV, **(node0_env or {})} if rank == 0 else ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for rank in (0, 1)
    ]


def _finish(nodes, timeout=400):
    for node in nodes:
        stdout, stderr = node.communicate(timeout=timeout)
        assert node.returncode == 0, stdout[-2000:] + stderr[-4000:]


def test_two_node_run_equals_one_process_run(tmp_path):
    data = noise_imagefolder(tmp_path / "images")
    options = ("--dataset", "imagefolder", "--data-dir", str(data), "--batch-size", "64", "--lr", "0.01")
    _run(_single(tmp_path / "one", 2, *options))
    _finish(_start_nodes("equal", tmp_path / "two", 2, *options))
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert one.keys() == two.keys()
    for key in one:
        if one[key].is_floating_point():
            torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-5, msg=key)
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 2


def test_killed_two_node_run_resumes_bit_for_bit(tmp_path):
    _finish(_start_nodes("whole", tmp_path / "whole", 3))
    killed = tmp_path / "killed"
    # Node 0's machine loses power while publishing its second checkpoint (a SIGKILL, no clean-up); then the operator
    # kills the job on node 1 too (left alone, its launcher gives up only when the c10d store's timeout expires).
    node0, node1 = _start_nodes("killed", killed, 3, node0_env={"ALIGNIFORM_FAULT": "checkpoint.rename:kill:2"})
    node0.communicate(timeout=300)
    assert node0.returncode != 0
    os.killpg(node1.pid, signal.SIGKILL)
    node1.communicate()
    assert load_checkpoint(killed / "checkpoint.pt")["epoch"] == 1
    _finish(_start_nodes("resumed", killed, 3, "--resume"))
    whole, resumed = _weights(tmp_path / "whole"), _weights(killed)
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key
