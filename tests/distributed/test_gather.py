"""aligniform.distributed.gather against one process: a real 2-process gloo group on CPU.

Spawning a group costs seconds, so one group (the module fixture) also checks the
context, the collectives and the per-rank seeds that a trainer relies on.
"""

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aligniform import (
    Objective,
    UniformLoss,
    align_loss,
    contrastive_loss,
    hard_contrastive_loss,
)
from aligniform.distributed import (
    all_gather_with_grad,
    barrier,
    broadcast_object,
    cleanup_distributed,
    gather_pairs,
    global_loss,
    init_distributed,
    reduce_mean,
    seed_worker,
    unwrap_model,
    wrap_ddp,
)
from tests.support.distributed import WORLD_SIZE, Normalize, launch, rows_of
from tests.support.sphere import raw_views, sphere

GLOBAL_BATCH = 12
INPUT_DIM, FEATURE_DIM, QUEUE_SIZE = 6, 4, 10
UNEQUAL_ROWS = (3, 5)  # rows per rank in the unequal-shard checks
LOSS_TOLERANCE, GRAD_TOLERANCE = 1e-12, 1e-9

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
    """Linear-Tanh-Linear-normalise, float64. No BatchNorm: test_batchnorm.py checks it on its own."""
    torch.manual_seed(1234)
    return nn.Sequential(nn.Linear(INPUT_DIM, 8), nn.Tanh(), nn.Linear(8, FEATURE_DIM), Normalize()).double()


def _global_views(n: int = GLOBAL_BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    return raw_views(n, INPUT_DIM, 0.3, torch.Generator().manual_seed(7))


def _queue() -> torch.Tensor:
    return sphere(QUEUE_SIZE, FEATURE_DIM, seed=11)


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


# --------------------------------------------------------------------------- workers (run in the children)


def _global_batch_worker(rank):
    ctx = init_distributed(device="cpu", timeout_s=60)
    results = {"context": ctx, "context_again": init_distributed(device="cpu")}
    model = wrap_ddp(_encoder(), ctx)
    queue = _queue()

    equal_rows = [GLOBAL_BATCH // WORLD_SIZE] * WORLD_SIZE
    first, second = (view[rows_of(rank, equal_rows)] for view in _global_views())
    for name, (objective, use_queue) in LOSS_CASES.items():
        results[name] = _loss_and_grads(model, objective, first, second, queue if use_queue else None)

    # Unequal shards through DDP: the last batch of an epoch may split unevenly.
    first, second = (view[rows_of(rank, UNEQUAL_ROWS)] for view in _global_views(sum(UNEQUAL_ROWS)))
    results["unequal_contrastive"] = _loss_and_grads(model, LOSS_CASES["contrastive"][0], first, second, None)

    # The bare gather: values, and the gradient it hands back (before any DDP averaging).
    for rows_per_rank in (UNEQUAL_ROWS, (0, 4)):
        values, weights = _gather_check_data(sum(rows_per_rank))
        local = values[rows_of(rank, rows_per_rank)].clone().requires_grad_()
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


# --------------------------------------------------------------------------- multi-process tests


@pytest.fixture(scope="module")
def global_batch_results(tmp_path_factory):
    return launch(_global_batch_worker, tmp_path_factory.mktemp("global_batch"))


@pytest.mark.slow
def test_context_under_torchrun(global_batch_results):
    for rank, results in global_batch_results.items():
        ctx = results["context"]
        assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.backend) == (rank, WORLD_SIZE, rank, "gloo")
        assert ctx.device == torch.device("cpu") and ctx.is_distributed and ctx.is_main == (rank == 0)
        assert results["context_again"] == ctx  # a second call reuses the group


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LOSS_CASES))
def test_global_loss_and_ddp_gradients_match_one_process(global_batch_results, name):
    objective, use_queue = LOSS_CASES[name]
    reference = _single_process_reference(objective, use_queue)
    for rank, results in global_batch_results.items():
        _assert_matches_reference(results[name], reference, f"{name}, rank {rank}")


@pytest.mark.slow
def test_unequal_shards_match_one_process(global_batch_results):
    reference = _single_process_reference(LOSS_CASES["contrastive"][0], False, n=sum(UNEQUAL_ROWS))
    for rank, results in global_batch_results.items():
        _assert_matches_reference(results["unequal_contrastive"], reference, f"unequal shards, rank {rank}")


@pytest.mark.slow
@pytest.mark.parametrize("rows_per_rank", [UNEQUAL_ROWS, (0, 4)])
def test_gather_values_and_gradient_with_unequal_rows(global_batch_results, rows_per_rank):
    values, weights = _gather_check_data(sum(rows_per_rank))
    for rank, results in global_batch_results.items():
        gathered, local_grad = results[f"gather_{rows_per_rank}"]
        assert torch.equal(gathered, values)  # every rank's rows, in rank order
        # Each of the P copies of the loss sends its gradient to this rank's rows.
        expected = WORLD_SIZE * weights[rows_of(rank, rows_per_rank)]
        torch.testing.assert_close(local_grad, expected, rtol=0, atol=1e-15)


@pytest.mark.slow
def test_gather_rejects_mismatched_ranks_on_every_rank(global_batch_results):
    for results in global_batch_results.values():
        shape_error, dtype_error = results["mismatch_errors"]
        assert shape_error is not None and "[(2, 3), (2, 4)]" in shape_error
        assert dtype_error is not None and "dtype" in dtype_error


@pytest.mark.slow
def test_gather_pairs_keeps_pairs_aligned(global_batch_results):
    for results in global_batch_results.values():
        x, y = results["pairs"]
        assert x.tolist() == [[0.0, 0.0], [1.0, 1.0]]
        assert y.tolist() == [[10.0, 10.0], [11.0, 11.0]]


@pytest.mark.slow
def test_trainer_helpers_across_ranks(global_batch_results):
    seeds = set()
    for results in global_batch_results.values():
        scalar_mean, tensor_mean = results["reduce_mean"]
        assert scalar_mean == pytest.approx(1.5)
        assert tensor_mean.tolist() == pytest.approx([0.5, 1.0])
        assert results["broadcast"] == {"run": "runs/a"}
        seeds.add(results["seed"])
    assert len(seeds) == WORLD_SIZE  # each rank draws its own augmentations
    assert global_batch_results[0]["seed"] == 5


# --------------------------------------------------------------------------- single process


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
