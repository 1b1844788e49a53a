"""Real process groups for tests: spawn ranks with torchrun's environment and collect their results.

Each rank writes its result (or traceback) to a file; the parent joins with a
deadline and kills stragglers, so no test can hang. Workers must be module-level
functions (the spawn start method pickles them by name).
"""

import os
import socket
import time
import traceback

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

WORLD_SIZE = 2
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class Normalize(nn.Module):
    """L2-normalise the rows: an encoder's last step."""

    def forward(self, z):
        return F.normalize(z, dim=1)


def rows_of(rank: int, rows_per_rank) -> slice:
    """Rank ``rank``'s rows of a global batch split into ``rows_per_rank``."""
    start = sum(rows_per_rank[:rank])
    return slice(start, start + rows_per_rank[rank])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _bootstrap(worker, rank, world_size, port, out_dir, args):
    """Child entry point: torchrun's environment, the worker, its result or traceback in a file."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)  # the ranks share a few cores
    try:
        result = worker(rank, *args)
        torch.save(result, os.path.join(out_dir, f"result_{rank}.pt"))
        code = 0
    except BaseException:
        with open(os.path.join(out_dir, f"error_{rank}.txt"), "w") as error_file:
            error_file.write(traceback.format_exc())
        code = 1
    # Skip interpreter teardown: a group whose peer died can block in its destructors.
    os._exit(code)


def launch(worker, out_dir, *args, world_size=WORLD_SIZE, wait_for=None, deadline_s=120.0):
    """Run ``worker(rank, *args)`` in ``world_size`` spawned processes; return the ranks' results.

    Only the ranks in ``wait_for`` (default: all) are awaited; the others are
    killed once those have finished. Any rank past the deadline is killed and
    the test fails, so this never hangs.
    """
    wait_for = range(world_size) if wait_for is None else wait_for
    context = mp.get_context("spawn")
    port = free_port()
    processes = [
        context.Process(target=_bootstrap, args=(worker, rank, world_size, port, str(out_dir), args), daemon=True)
        for rank in range(world_size)
    ]
    for process in processes:
        process.start()
    deadline = time.monotonic() + deadline_s
    try:
        for rank in wait_for:
            processes[rank].join(max(0.0, deadline - time.monotonic()))
        late = [rank for rank in wait_for if processes[rank].is_alive()]
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(5)
    error_files = {rank: out_dir / f"error_{rank}.txt" for rank in wait_for}
    errors = {rank: path.read_text() for rank, path in error_files.items() if path.exists()}
    if errors:
        pytest.fail("\n".join(f"rank {rank} failed:\n{text}" for rank, text in errors.items()))
    if late:
        pytest.fail(f"rank(s) {late} still running after {deadline_s:.0f} s")
    return {rank: torch.load(out_dir / f"result_{rank}.pt", weights_only=False) for rank in wait_for}
