"""aligniform.distributed.context: torchrun's environment, a single process, and a dead peer."""

import os
import time

import pytest
import torch
import torch.distributed as dist

from aligniform.distributed import DistributedContext, all_gather_with_grad, cleanup_distributed, init_distributed
from tests.support.distributed import launch


def _dead_peer_worker(rank, peer, timeout_s):
    init_distributed(device="cpu", timeout_s=timeout_s)
    dist.barrier()
    if rank == 1:
        if peer == "exited":
            os._exit(0)
        time.sleep(600)  # "stuck": alive but never joins the collective; the parent kills it
    time.sleep(0.5)  # let an exiting peer go first
    start = time.monotonic()
    try:
        all_gather_with_grad(torch.ones(2, 3))
    except RuntimeError as error:
        return {"raised": type(error).__name__, "message": str(error), "seconds": time.monotonic() - start}
    return {"raised": None, "seconds": time.monotonic() - start}


# --------------------------------------------------------------------------- multi-process tests


@pytest.mark.slow
@pytest.mark.parametrize("peer", ["exited", "stuck"])
def test_collective_with_dead_peer_raises_within_timeout(tmp_path, peer):
    timeout_s = 5.0
    results = launch(_dead_peer_worker, tmp_path, peer, timeout_s, wait_for=[0], deadline_s=60)
    outcome = results[0]
    assert outcome["raised"] is not None, "the collective returned although its peer was gone"
    assert outcome["seconds"] < timeout_s + 10, outcome


# --------------------------------------------------------------------------- single process


def test_single_process_context(no_torchrun):
    ctx = init_distributed(device="cpu")
    assert ctx == DistributedContext(0, 1, 0, torch.device("cpu"), None)
    assert ctx.is_main and not ctx.is_distributed
    auto = init_distributed()
    assert auto.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert not dist.is_initialized()
    cleanup_distributed()  # a no-op without a group


def test_world_size_one_is_a_single_process(no_torchrun, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert init_distributed(device="cpu").world_size == 1
    assert not dist.is_initialized()


@pytest.mark.parametrize(
    "env, device, message",
    [
        ({"WORLD_SIZE": "2", "RANK": "0"}, "cpu", "MASTER_ADDR"),
        ({"WORLD_SIZE": "2"}, "cpu", "RANK"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "cpu", "RANK must lie"),
        ({"WORLD_SIZE": "two"}, "cpu", "integer"),
        ({}, "tpu-ish", "unknown device"),
    ],
)
def test_init_distributed_rejects_bad_settings(no_torchrun, monkeypatch, env, device, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        init_distributed(device=device)
    assert not dist.is_initialized()


def test_init_distributed_rejects_bad_timeout(no_torchrun):
    with pytest.raises(ValueError, match="timeout_s"):
        init_distributed(timeout_s=0)
