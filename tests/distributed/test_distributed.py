"""aligniform.distributed: real 2-process gloo groups on CPU, checked against one process.

Process groups are started with ``multiprocessing`` (spawn), each rank writing
its results to a file; the parent joins with a deadline and kills stragglers,
so no test can hang. Spawning costs seconds, so one group runs many checks.
"""

from __future__ import annotations

import functools
import os
import socket
import time
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler

from aligniform import (
    Objective,
    UniformLoss,
    align_loss,
    contrastive_loss,
    hard_contrastive_loss,
    uniform_loss,
)
from aligniform.distributed import (
    DistributedContext,
    all_gather_with_grad,
    barrier,
    broadcast_object,
    cleanup_distributed,
    convert_sync_batchnorm,
    gather_pairs,
    global_loss,
    init_distributed,
    reduce_mean,
    seed_worker,
    shard_indices,
    unwrap_model,
    wrap_ddp,
)

WORLD_SIZE = 2
GLOBAL_BATCH = 12
INPUT_DIM, FEATURE_DIM, QUEUE_SIZE = 6, 4, 10
UNEQUAL_ROWS = (3, 5)  # rows per rank in the unequal-shard checks
LOSS_TOLERANCE, GRAD_TOLERANCE = 1e-12, 1e-9
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")

# Each case: objective, and whether it gets the shared queue.
LOSS_CASES = {
    "align": (functools.partial(align_loss, alpha=2.0), False),
    "uniform": (UniformLoss(t=2.0), False),
    "contrastive": (functools.partial(contrastive_loss, tau=0.5), False),
    "hard_contrastive": (functools.partial(hard_contrastive_loss, tau=0.5, alpha=0.3), False),
    "contrastive+uniform": (Objective.parse("contrastive(tau=0.5) + uniform(t=2)"), False),
    "uniform_queue": (UniformLoss(t=2.0), True),
    "contrastive_queue": (functools.partial(contrastive_loss, tau=0.5), True),
}


# --------------------------------------------------------------------------- shared data and model


def _encoder() -> nn.Module:
    """Linear-Tanh-Linear-normalise, float64. No BatchNorm: its per-shard statistics would
    differ from the global batch's on CPU, where SyncBatchNorm is unavailable."""
    torch.manual_seed(1234)
    return nn.Sequential(nn.Linear(INPUT_DIM, 8), nn.Tanh(), nn.Linear(8, FEATURE_DIM), _Normalize()).double()


class _Normalize(nn.Module):
    def forward(self, z):
        return F.normalize(z, dim=1)


def _global_views(n: int = GLOBAL_BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    first = torch.randn(n, INPUT_DIM, generator=generator, dtype=torch.float64)
    second = first + 0.3 * torch.randn(n, INPUT_DIM, generator=generator, dtype=torch.float64)
    return first, second


def _queue() -> torch.Tensor:
    generator = torch.Generator().manual_seed(11)
    return F.normalize(torch.randn(QUEUE_SIZE, FEATURE_DIM, generator=generator, dtype=torch.float64), dim=1)


def _rows_of(rank: int, rows_per_rank) -> slice:
    start = sum(rows_per_rank[:rank])
    return slice(start, start + rows_per_rank[rank])


def _encode_pair(model, first, second):
    """Both views in one forward pass (as a trainer does), split back into (x, y)."""
    return model(torch.cat([first, second])).chunk(2)


def _loss_and_grads(model, objective, first, second, queue):
    """Loss over the global batch (gathered when distributed) and the parameter gradients."""
    model.zero_grad(set_to_none=True)
    x, y = _encode_pair(model, first, second)
    loss = global_loss(objective, x, y, queue=queue)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in unwrap_model(model).parameters()])
    return loss.item(), grads


def _single_process_reference(objective, use_queue, n=GLOBAL_BATCH):
    first, second = _global_views(n)
    return _loss_and_grads(_encoder(), objective, first, second, _queue() if use_queue else None)


def _assert_matches_reference(result, reference, label):
    loss, grads = result
    ref_loss, ref_grads = reference
    assert abs(loss - ref_loss) <= LOSS_TOLERANCE * max(1.0, abs(ref_loss)), (label, loss, ref_loss)
    relative = float((grads - ref_grads).norm() / ref_grads.norm())
    assert relative <= GRAD_TOLERANCE, f"{label}: relative gradient error {relative:.3g}"
    torch.testing.assert_close(grads, ref_grads, rtol=GRAD_TOLERANCE, atol=1e-13, msg=label)


# --------------------------------------------------------------------------- process launcher


def _free_port() -> int:
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


def _launch(worker, out_dir, *args, world_size=WORLD_SIZE, wait_for=None, deadline_s=120.0):
    """Run ``worker(rank, *args)`` in ``world_size`` spawned processes; return the ranks' results.

    Only the ranks in ``wait_for`` (default: all) are awaited; the others are
    killed once those have finished. Any rank past the deadline is killed and
    the test fails, so this never hangs.
    """
    wait_for = range(world_size) if wait_for is None else wait_for
    context = mp.get_context("spawn")
    port = _free_port()
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


# --------------------------------------------------------------------------- workers (run in the children)


def _global_batch_worker(rank):
    ctx = init_distributed(device="cpu", timeout_s=60)
    results = {"context": ctx, "context_again": init_distributed(device="cpu")}
    model = wrap_ddp(_encoder(), ctx)
    queue = _queue()

    equal_rows = [GLOBAL_BATCH // WORLD_SIZE] * WORLD_SIZE
    first, second = (view[_rows_of(rank, equal_rows)] for view in _global_views())
    for name, (objective, use_queue) in LOSS_CASES.items():
        results[name] = _loss_and_grads(model, objective, first, second, queue if use_queue else None)

    # Unequal shards through DDP: the last batch of an epoch may split unevenly.
    first, second = (view[_rows_of(rank, UNEQUAL_ROWS)] for view in _global_views(sum(UNEQUAL_ROWS)))
    results["unequal_contrastive"] = _loss_and_grads(model, LOSS_CASES["contrastive"][0], first, second, None)

    # The bare gather: values, and the gradient it hands back (before any DDP averaging).
    for rows_per_rank in (UNEQUAL_ROWS, (0, 4)):
        values, weights = _gather_check_data(sum(rows_per_rank))
        local = values[_rows_of(rank, rows_per_rank)].clone().requires_grad_()
        gathered = all_gather_with_grad(local)
        (gathered * weights).sum().backward()
        results[f"gather_{rows_per_rank}"] = (gathered.detach(), local.grad)

    results["mismatch_errors"] = [
        _gather_error(torch.zeros(2, 3 + rank)),
        _gather_error(torch.zeros(2, 3, dtype=(torch.float64, torch.float32)[rank])),
    ]
    pair_x, pair_y = gather_pairs(torch.full((1, 2), float(rank)), torch.full((1, 2), 10.0 + rank))
    results["pairs"] = (pair_x, pair_y)

    results["reduce_mean"] = (reduce_mean(float(rank + 1)), reduce_mean(torch.tensor([rank, 2 * rank])))
    results["broadcast"] = broadcast_object({"run": "runs/a"} if rank == 0 else None)
    results["seed"] = seed_worker(5)
    barrier()
    cleanup_distributed()
    return results


def _gather_check_data(n):
    generator = torch.Generator().manual_seed(n)
    return (
        torch.randn(n, 3, generator=generator, dtype=torch.float64),
        torch.randn(n, 3, generator=generator, dtype=torch.float64),
    )


def _gather_error(tensor):
    try:
        all_gather_with_grad(tensor)
    except ValueError as error:
        return str(error)
    return None


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


@pytest.fixture(scope="module")
def global_batch_results(tmp_path_factory):
    return _launch(_global_batch_worker, tmp_path_factory.mktemp("global_batch"))


def test_context_under_torchrun(global_batch_results):
    for rank, results in global_batch_results.items():
        ctx = results["context"]
        assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.backend) == (rank, WORLD_SIZE, rank, "gloo")
        assert ctx.device == torch.device("cpu") and ctx.is_distributed and ctx.is_main == (rank == 0)
        assert results["context_again"] == ctx  # a second call reuses the group


@pytest.mark.parametrize("name", list(LOSS_CASES))
def test_global_loss_and_ddp_gradients_match_one_process(global_batch_results, name):
    objective, use_queue = LOSS_CASES[name]
    reference = _single_process_reference(objective, use_queue)
    for rank, results in global_batch_results.items():
        _assert_matches_reference(results[name], reference, f"{name}, rank {rank}")


def test_unequal_shards_match_one_process(global_batch_results):
    reference = _single_process_reference(LOSS_CASES["contrastive"][0], False, n=sum(UNEQUAL_ROWS))
    for rank, results in global_batch_results.items():
        _assert_matches_reference(results["unequal_contrastive"], reference, f"unequal shards, rank {rank}")


@pytest.mark.parametrize("rows_per_rank", [UNEQUAL_ROWS, (0, 4)])
def test_gather_values_and_gradient_with_unequal_rows(global_batch_results, rows_per_rank):
    values, weights = _gather_check_data(sum(rows_per_rank))
    for rank, results in global_batch_results.items():
        gathered, local_grad = results[f"gather_{rows_per_rank}"]
        assert torch.equal(gathered, values)  # every rank's rows, in rank order
        # Each of the P copies of the loss sends its gradient to this rank's rows.
        expected = WORLD_SIZE * weights[_rows_of(rank, rows_per_rank)]
        torch.testing.assert_close(local_grad, expected, rtol=0, atol=1e-15)


def test_gather_rejects_mismatched_ranks_on_every_rank(global_batch_results):
    for results in global_batch_results.values():
        shape_error, dtype_error = results["mismatch_errors"]
        assert shape_error is not None and "[(2, 3), (2, 4)]" in shape_error
        assert dtype_error is not None and "dtype" in dtype_error


def test_gather_pairs_keeps_pairs_aligned(global_batch_results):
    for results in global_batch_results.values():
        x, y = results["pairs"]
        assert x.tolist() == [[0.0, 0.0], [1.0, 1.0]]
        assert y.tolist() == [[10.0, 10.0], [11.0, 11.0]]


def test_trainer_helpers_across_ranks(global_batch_results):
    seeds = set()
    for rank, results in global_batch_results.items():
        scalar_mean, tensor_mean = results["reduce_mean"]
        assert scalar_mean == pytest.approx(1.5)
        assert tensor_mean.tolist() == pytest.approx([0.5, 1.0])
        assert results["broadcast"] == {"run": "runs/a"}
        seeds.add(results["seed"])
    assert len(seeds) == WORLD_SIZE  # each rank draws its own augmentations
    assert global_batch_results[0]["seed"] == 5


@pytest.mark.parametrize("peer", ["exited", "stuck"])
def test_collective_with_dead_peer_raises_within_timeout(tmp_path, peer):
    timeout_s = 5.0
    results = _launch(_dead_peer_worker, tmp_path, peer, timeout_s, wait_for=[0], deadline_s=60)
    outcome = results[0]
    assert outcome["raised"] is not None, "the collective returned although its peer was gone"
    assert outcome["seconds"] < timeout_s + 10, outcome


# --------------------------------------------------------------------------- single process


@pytest.fixture
def no_torchrun(monkeypatch):
    for name in TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not dist.is_initialized()


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


def test_single_process_gather_is_identity(no_torchrun):
    x = F.normalize(torch.randn(5, 3, dtype=torch.float64), dim=1).requires_grad_()
    y = F.normalize(torch.randn(5, 3, dtype=torch.float64), dim=1)
    assert all_gather_with_grad(x) is x
    gathered_x, gathered_y = gather_pairs(x, y)
    assert gathered_x is x and gathered_y is y
    objective = Objective.parse("contrastive(tau=0.5) + uniform(t=2)")
    assert torch.equal(global_loss(objective, x, y), objective(x, y))
    with pytest.raises(ValueError, match="same shape"):
        gather_pairs(x, y[:4])
    with pytest.raises(ValueError, match="row dimension"):
        all_gather_with_grad(torch.tensor(1.0))


def test_single_process_helpers(no_torchrun):
    assert reduce_mean(2.5) == 2.5
    value = torch.tensor([1.0, 2.0])
    assert reduce_mean(value) is value
    assert broadcast_object([1, 2]) == [1, 2]
    barrier()
    assert seed_worker(3) == 3 and seed_worker(3, rank=1) != 3
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    assert wrap_ddp(model, DistributedContext()) is model
    assert unwrap_model(model) is model
    assert convert_sync_batchnorm(model, DistributedContext()) is model


def test_convert_sync_batchnorm_on_cpu_and_gpu():
    from aligniform.sync_batchnorm import GlobalBatchNorm

    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    model[1].running_mean.fill_(0.5)
    cpu_job = DistributedContext(rank=0, world_size=2, device=torch.device("cpu"), backend="gloo")
    converted = convert_sync_batchnorm(model, cpu_job)
    assert isinstance(converted[1], GlobalBatchNorm)  # PyTorch's SyncBatchNorm rejects CPU tensors
    assert torch.equal(converted[1].running_mean, torch.full((3,), 0.5))  # state carried over
    gpu_job = DistributedContext(rank=0, world_size=2, device=torch.device("cuda", 0), backend="nccl")
    converted = convert_sync_batchnorm(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), gpu_job)
    assert isinstance(converted[1], nn.SyncBatchNorm)  # conversion itself needs no GPU


def _bn_encoder() -> nn.Module:
    torch.manual_seed(11)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Linear(8, 5),
        _Normalize(),
    ).double()


def _bn_images():
    generator = torch.Generator().manual_seed(12)
    return torch.randn(2, GLOBAL_BATCH, 1, 6, 6, generator=generator, dtype=torch.float64)


def _bn_step(model, first, second, gather):
    x, y = model(torch.cat([first, second])).chunk(2)  # both views in one pass, as the trainer does
    x, y = gather(x), gather(y)
    loss = contrastive_loss(x, y, 0.5) + uniform_loss(x, 2.0)
    loss.backward()
    module = model.module if hasattr(model, "module") else model
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    stats = {name: b.clone() for name, b in module.named_buffers() if "running" in name}
    return loss.detach(), grads, stats


def _global_batchnorm_worker(rank):
    ctx = init_distributed(device="cpu", timeout_s=60)
    model = wrap_ddp(convert_sync_batchnorm(_bn_encoder(), ctx), ctx)
    first, second = (view[_rows_of(rank, [GLOBAL_BATCH // 2] * 2)] for view in _bn_images())
    result = _bn_step(model, first, second, all_gather_with_grad)
    cleanup_distributed()
    return result


def test_global_batchnorm_matches_one_process_batchnorm(tmp_path):
    results = _launch(_global_batchnorm_worker, tmp_path)
    first, second = _bn_images()
    loss, grads, stats = _bn_step(_bn_encoder(), first, second, lambda t: t)
    for rank, (rank_loss, rank_grads, rank_stats) in results.items():
        torch.testing.assert_close(rank_loss, loss, rtol=1e-12, atol=1e-12)
        for name in grads:  # after DDP's averaging
            torch.testing.assert_close(
                rank_grads[name], grads[name], rtol=1e-9, atol=1e-12, msg=lambda m, name=name: f"{name}: {m}"
            )
        for name in stats:
            torch.testing.assert_close(rank_stats[name], stats[name], rtol=1e-12, atol=1e-12, msg=name)


# --------------------------------------------------------------------------- sharding


class _Sized:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


@pytest.mark.parametrize("n, world_size", [(10, 2), (11, 3), (7, 4), (5, 8), (1, 1)])
@pytest.mark.parametrize("drop_last", [True, False])
def test_shard_indices_matches_distributed_sampler(n, world_size, drop_last):
    for epoch in (0, 3):
        shards = [
            shard_indices(n, rank, world_size, seed=42, epoch=epoch, drop_last=drop_last) for rank in range(world_size)
        ]
        for rank, shard in enumerate(shards):
            sampler = DistributedSampler(_Sized(n), world_size, rank, shuffle=True, seed=42, drop_last=drop_last)
            sampler.set_epoch(epoch)
            assert shard.tolist() == list(sampler)
            assert shard.dtype == torch.int64
        assert len({len(shard) for shard in shards}) == 1  # equal sizes
        everything = torch.cat(shards)
        permutation = torch.randperm(n, generator=torch.Generator().manual_seed(42 + epoch))
        if drop_last:
            kept = n - n % world_size
            assert len(set(everything.tolist())) == len(everything) == kept  # disjoint
            assert sorted(everything.tolist()) == sorted(permutation[:kept].tolist())
        else:
            assert set(everything.tolist()) == set(range(n))  # every sample, some twice


def test_shard_indices_is_deterministic_per_seed_and_epoch():
    first = shard_indices(100, 1, 4, seed=3, epoch=2)
    assert torch.equal(first, shard_indices(100, 1, 4, seed=3, epoch=2))
    assert not torch.equal(first, shard_indices(100, 1, 4, seed=3, epoch=3))
    assert not torch.equal(first, shard_indices(100, 1, 4, seed=4, epoch=2))
    assert shard_indices(6, 1, 2, shuffle=False).tolist() == [1, 3, 5]
    assert shard_indices(0, 0, 2).numel() == 0


@pytest.mark.parametrize("args, message", [((10, 2, 2), "rank"), ((10, 0, 0), "world_size"), ((-1, 0, 1), "n must")])
def test_shard_indices_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        shard_indices(*args)
