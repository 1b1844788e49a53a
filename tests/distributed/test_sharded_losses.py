"""Sharded losses under real gloo groups (2 and 3 processes) against one process on the whole global batch.

Each rank holds its rows of the global batch, computes only its own share of
the loss (``global_loss`` passes a ``Shard``), and must return the global
loss; its rows' gradient, after the 1/P of DDP's averaging, and every
parameter gradient must equal one process's, in float64 to 1e-9 (value 1e-12).
One-process checks of the sharded path (a one-rank Shard, and the pair split
simulated rank by rank) run without spawning.
"""

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aligniform import (
    AlignLoss,
    Objective,
    UniformLoss,
    align_loss,
    asymptotic_contrastive_loss,
    contrastive_loss,
    hard_contrastive_loss,
    simple_loss,
    uniform_loss,
)
from aligniform.distributed import (
    Shard,
    accepts_shard,
    average_gradients,
    cleanup_distributed,
    global_loss,
    init_distributed,
    unwrap_model,
    wrap_ddp,
)
from aligniform.losses import nt_xent_loss, supervised_contrastive_loss
from aligniform.losses.engine import as_columns, as_rows, balanced_pairs_logsumexp
from aligniform.objective import REQUIRED, TERMS
from tests.support.distributed import Normalize, launch, rows_of
from tests.support.sphere import leaves, noisy_pairs, raw_views, unit_rows

DIM, QUEUE_SIZE, INPUT_DIM = 5, 6, 7
LOSS_TOLERANCE, GRAD_TOLERANCE = 1e-12, 1e-9
# One row per rank (1+1, 1+1+1) and ranks with no rows at all (0+4, 0+3+2, 2+0+3) included: a rank with no pair,
# or no row, of its own must still join every collective, in forward and in backward.
SHARDS = {2: [(3, 5), (4, 4), (1, 1), (0, 4)], 3: [(2, 3, 4), (1, 4, 2), (1, 1, 1), (0, 3, 2), (2, 0, 3)]}


def _one_view_uniform(x, y, shard=None):
    return uniform_loss(x, t=3.0, shard=shard)


def _one_view_uniform_queue_only(x, y, queue, shard=None):
    return uniform_loss(x, t=2.0, queue=queue, intra_batch=False, shard=shard)


def _unshardable(x, y):
    """A loss without a shard keyword: global_loss gathers the whole batch for it."""
    return contrastive_loss(x, y, tau=0.4) + align_loss(x, y)


# name -> (loss, whether it gets the queue, extra keywords)
CASES = {
    "align": (functools.partial(align_loss, alpha=2.0), False, {}),
    "align_alpha1": (AlignLoss(alpha=1.0), False, {}),
    "uniform_two_views": (UniformLoss(t=2.0), False, {}),
    "uniform_one_view": (_one_view_uniform, False, {}),
    "uniform_queue": (UniformLoss(t=2.0), True, {}),
    "uniform_queue_only": (_one_view_uniform_queue_only, True, {}),
    "contrastive": (functools.partial(contrastive_loss, tau=0.3), False, {}),
    "contrastive_one_direction": (functools.partial(contrastive_loss, tau=0.3, symmetric=False), False, {}),
    "contrastive_queue": (functools.partial(contrastive_loss, tau=0.3), True, {}),
    "contrastive_moco": (functools.partial(contrastive_loss, tau=0.2, symmetric=False), True, {}),
    "contrastive_moco_batch_keys": (
        functools.partial(contrastive_loss, tau=0.2, symmetric=False, batch_negatives=True),
        True,
        {},
    ),
    "nt_xent": (functools.partial(nt_xent_loss, tau=0.3), False, {}),
    "hard_contrastive": (functools.partial(hard_contrastive_loss, tau=0.3, alpha=0.3), False, {}),
    "hard_contrastive_queue": (functools.partial(hard_contrastive_loss, tau=0.3, alpha=0.3), True, {}),
    "hard_contrastive_moco": (
        functools.partial(hard_contrastive_loss, tau=0.3, alpha=0.5, symmetric=False),
        True,
        {},
    ),
    "simple": (functools.partial(simple_loss, lam=0.1), False, {}),
    "simple_queue": (functools.partial(simple_loss, lam=0.1), True, {}),
    "hard_simple": (functools.partial(simple_loss, lam=0.1, hard_alpha=0.3), False, {}),
    "asymptotic": (functools.partial(asymptotic_contrastive_loss, tau=0.3), False, {}),
    "asymptotic_queue": (functools.partial(asymptotic_contrastive_loss, tau=0.3), True, {}),
    "objective": (Objective.parse("contrastive(tau=0.5) + 0.5*uniform(t=2) + align(alpha=2)"), False, {}),
    "objective_moco": (Objective.parse("contrastive(tau=0.2) + uniform(t=2) + simple(lam=0.1)"), True, {"moco": True}),
    "unshardable": (_unshardable, False, {}),
}


def _registered_cases():
    """Every registered loss module (a new loss is tested here without an edit), required arguments at 0.3."""
    cases = {}
    for name, kind in TERMS.items():
        if kind.takes_labels:  # needs per-row labels: tests/losses/test_supcon.py and the labels fallback below
            continue
        arguments = {parameter: 0.3 if default is REQUIRED else default for parameter, default in kind.params.items()}
        cases[f"term_{name}"] = (kind.module(**arguments), False, {})
    return cases


CASES.update(_registered_cases())


def _learnable_objective():
    objective = Objective.parse("contrastive(tau=learn(0.3)) + 0.5*uniform(t=learn(2, max=5))").double()
    with torch.no_grad():  # away from the initial values, so their gradients are not special
        for parameter in objective.parameters():
            parameter.add_(0.1)
    return objective


# --------------------------------------------------------------------------- data


def _global_batch(n, seed=3):
    generator = torch.Generator().manual_seed(seed)
    x, y = noisy_pairs(n, DIM, 0.7, generator)
    return x, y, unit_rows(QUEUE_SIZE, DIM, generator)


def _encoder():
    torch.manual_seed(1234)
    return nn.Sequential(nn.Linear(INPUT_DIM, 8), nn.Tanh(), nn.Linear(8, DIM), Normalize()).double()


def _inputs(n):
    return raw_views(n, INPUT_DIM, 0.3, torch.Generator().manual_seed(n))


def _loss_and_grads(loss_fn, x, y, queue, options, shard_rows=None, world_size=1):
    """The loss and its gradient in (x, y): the plain call, or global_loss on the rows [shard_rows]."""
    if shard_rows is not None:
        x, y = x[shard_rows], y[shard_rows]
    x, y = leaves(x, y)
    if shard_rows is None:
        loss = loss_fn(x, y, **({"queue": queue} if queue is not None else {}), **options)
    else:
        loss = global_loss(loss_fn, x, y, queue=queue, **options)
    grad_x, grad_y = torch.autograd.grad(loss, [x, y], allow_unused=True)
    # Each rank's copy of the loss sends its gradient to these rows: P · dL/dx_r (DDP divides by P).
    return loss.item(), *(None if g is None else g / world_size for g in (grad_x, grad_y))


def _model_step(objective, first, second, shard_rows=None, world_size=1):
    """One training step's gradients: encoder (DDP-averaged under torchrun) and the objective's parameters."""
    model = _encoder()
    if shard_rows is not None:
        model = wrap_ddp(model, init_distributed(device="cpu"))
        first, second = first[shard_rows], second[shard_rows]
    objective.zero_grad(set_to_none=True)
    x, y = model(torch.cat([first, second])).chunk(2)
    loss = global_loss(objective, x, y)
    loss.backward()
    average_gradients(objective.parameters())
    model_grads = torch.cat([p.grad.flatten() for p in unwrap_model(model).parameters()])
    return loss.item(), model_grads, torch.stack([p.grad for p in objective.parameters()])


# --------------------------------------------------------------------------- the workers (in the children)


def _sharded_worker(rank, world_size):
    init_distributed(device="cpu", timeout_s=60)
    results = {}
    for counts in SHARDS[world_size]:
        x, y, queue = _global_batch(sum(counts))
        rows = rows_of(rank, counts)
        for name, (loss_fn, use_queue, options) in CASES.items():
            results[counts, name] = _loss_and_grads(
                loss_fn, x, y, queue if use_queue else None, options, rows, world_size
            )
        first, second = _inputs(sum(counts))
        results[counts, "model"] = _model_step(_learnable_objective(), first, second, rows, world_size)
        # The gather-everything fallback (a plain callable) also gathers per-row labels.
        labels = torch.arange(sum(counts)) % 3
        results[counts, "labels_fallback"] = global_loss(
            lambda a, b, labels: supervised_contrastive_loss(a, b, labels, tau=0.3),
            x[rows],
            y[rows],
            labels=labels[rows],
        ).item()
        # A failing check on one rank makes every rank raise (none waits in a collective).
        bad_x = x[rows].clone()
        if rank == world_size - 1:
            bad_x[0] = math.nan
        try:
            global_loss(functools.partial(contrastive_loss, tau=0.3), bad_x, y[rows])
            results[counts, "error"] = None
        except ValueError as error:
            results[counts, "error"] = str(error)
    cleanup_distributed()
    return results


@pytest.fixture(scope="module", params=sorted(SHARDS))
def sharded_results(request, tmp_path_factory):
    world_size = request.param
    out = tmp_path_factory.mktemp(f"sharded_{world_size}")
    return world_size, launch(_sharded_worker, out, world_size, world_size=world_size, deadline_s=300)


def _assert_close(result, reference, label):
    loss, *grads = result
    ref_loss, *ref_grads = reference
    assert abs(loss - ref_loss) <= LOSS_TOLERANCE * max(1.0, abs(ref_loss)), (label, loss, ref_loss)
    for grad, ref_grad in zip(grads, ref_grads):
        if ref_grad is None:
            assert grad is None or not grad.any(), label
            continue
        torch.testing.assert_close(grad, ref_grad, rtol=GRAD_TOLERANCE, atol=1e-13, msg=label)


# --------------------------------------------------------------------------- multi-process tests


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_sharded_loss_and_gradients_match_one_process(sharded_results, name):
    world_size, results = sharded_results
    loss_fn, use_queue, options = CASES[name]
    for counts in SHARDS[world_size]:
        x, y, queue = _global_batch(sum(counts))
        reference = _loss_and_grads(loss_fn, x, y, queue if use_queue else None, options)
        for rank in range(world_size):
            loss, grad_x, grad_y = results[rank][counts, name]
            rows = rows_of(rank, counts)
            local_reference = (
                reference[0],
                *(None if g is None else g[rows] for g in reference[1:]),
            )
            _assert_close((loss, grad_x, grad_y), local_reference, f"{name}, shards {counts}, rank {rank}")


@pytest.mark.slow
def test_training_step_with_learnable_temperature_matches_one_process(sharded_results):
    world_size, results = sharded_results
    for counts in SHARDS[world_size]:
        reference = _model_step(_learnable_objective(), *_inputs(sum(counts)))
        for rank in range(world_size):
            _assert_close(results[rank][counts, "model"], reference, f"model step, shards {counts}, rank {rank}")


@pytest.mark.slow
def test_the_gathering_fallback_also_gathers_labels(sharded_results):
    world_size, results = sharded_results
    for counts in SHARDS[world_size]:
        x, y, _ = _global_batch(sum(counts))
        labels = torch.arange(sum(counts)) % 3
        reference = supervised_contrastive_loss(x, y, labels, tau=0.3).item()
        for rank in range(world_size):
            assert abs(results[rank][counts, "labels_fallback"] - reference) <= LOSS_TOLERANCE * max(
                1.0, abs(reference)
            )


@pytest.mark.slow
def test_a_failing_check_on_one_rank_raises_on_every_rank(sharded_results):
    world_size, results = sharded_results
    for counts in SHARDS[world_size]:
        messages = [results[rank][counts, "error"] for rank in range(world_size)]
        assert "NaN" in messages[-1]
        assert all(f"rank {world_size - 1}" in message for message in messages[:-1]), messages


# --------------------------------------------------------------------------- one process


@pytest.mark.parametrize("name", list(CASES))
def test_one_rank_shard_is_the_plain_loss(name, no_torchrun):
    """Shard(0, (N,)): the sharded code path with identity collectives gives the plain loss."""
    loss_fn, use_queue, options = CASES[name]
    if not accepts_shard(loss_fn):
        return
    x, y, queue = _global_batch(9)
    queue = queue if use_queue else None
    reference = _loss_and_grads(loss_fn, x, y, queue, options)
    x, y = leaves(x, y)
    kwargs = {"queue": queue} if queue is not None else {}
    loss = loss_fn(x, y, shard=Shard.of(x, y), **kwargs, **options)
    grads = torch.autograd.grad(loss, [x, y], allow_unused=True)
    _assert_close((loss.item(), *grads), reference, name)


@pytest.mark.parametrize("counts", [(4,), (3, 5), (4, 4), (2, 3, 4), (1, 4, 2), (5, 1), (1, 1, 1, 1), (0, 3, 2)])
def test_balanced_pairs_visit_every_pair_once_and_split_the_work(counts):
    """Simulated rank by rank: the ranks' visits are exactly the unordered pairs, each once, evenly split."""
    points = F.normalize(torch.randn(sum(counts), DIM, dtype=torch.float64), dim=1).requires_grad_()
    rows, columns = as_rows(points, 2.0), as_columns(points)
    logits = rows @ columns.T
    pairs = torch.ones_like(logits, dtype=torch.bool).triu(1)
    expected_total = torch.logsumexp(logits[pairs], 0)
    expected_points = torch.logsumexp(logits.masked_fill(torch.eye(len(points), dtype=torch.bool), -math.inf), 1)
    totals, partials = [], []
    for rank in range(len(counts)):
        shard = Shard(rank, counts)
        own_rows = rows[shard.start : shard.stop]
        row, point = balanced_pairs_logsumexp(own_rows, columns, counts, shard, column_lse=True)
        totals.append(torch.logsumexp(row, 0) if row.numel() else torch.tensor(-math.inf, dtype=torch.float64))
        partials.append(point)
    total, per_point = torch.logsumexp(torch.stack(totals), 0), torch.logsumexp(torch.stack(partials), 0)
    torch.testing.assert_close(total, expected_total, rtol=1e-12, atol=0)
    torch.testing.assert_close(per_point, expected_points, rtol=1e-12, atol=0)
    # The same gradient as the dense forms, and never NaN (a one-point block's point has no own pair).
    got = torch.autograd.grad(total + per_point.sum(), points, retain_graph=True)[0]
    expected = torch.autograd.grad(expected_total + expected_points.sum(), points)[0]
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_balanced_pairs_share_is_one_over_p():
    """With equal blocks each rank visits M·m/2 pairs: 1/P of the M(M-1)/2, up to the diagonal."""
    counts = (6, 6, 6)
    visited = []
    for rank in range(len(counts)):
        shard = Shard(rank, counts)
        # exp(0) = 1 per pair: the row sums count the pairs this rank visits.
        row, _ = balanced_pairs_logsumexp(
            torch.zeros(counts[rank], 1, dtype=torch.float64),
            torch.zeros(sum(counts), 1, dtype=torch.float64),
            counts,
            shard,
        )
        visited.append(round(float(torch.logsumexp(row, 0).exp())))
    m, total = counts[0], sum(counts)
    assert sum(visited) == total * (total - 1) // 2
    assert max(visited) - min(visited) <= m // 2 + 1, visited
    assert max(visited) <= total * m / 2, visited


def test_global_loss_without_torchrun_is_the_plain_call(no_torchrun):
    x, y, queue = _global_batch(6)
    objective = _learnable_objective()
    assert torch.equal(global_loss(objective, x, y, queue=queue), objective(x, y, queue=queue))
    assert torch.equal(global_loss(_unshardable, x, y), _unshardable(x, y))
    assert not accepts_shard(_unshardable) and accepts_shard(objective) and accepts_shard(UniformLoss())


@pytest.mark.slow
def test_torchrun_training_with_learnt_temperature_equals_one_process(tmp_path):
    """The trainer end to end: sharded objective, objective gradients averaged, the same run as one process."""
    from aligniform.train import load_checkpoint
    from tests.distributed.test_training import _run, _single, _torchrun, noise_imagefolder

    data = noise_imagefolder(tmp_path / "images")
    options = ("--dataset", "imagefolder", "--data-dir", str(data), "--batch-size", "64", "--lr", "0.01")
    options += ("--objective", "contrastive(tau=learn(0.5)) + uniform(t=learn(2))")
    _run(_single(tmp_path / "one", 2, *options))
    _run(_torchrun(tmp_path / "two", 2, *options))
    one, two = (load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("one", "two"))
    for part in ("model", "objective"):
        for key, value in one[part].items():
            if value.is_floating_point():
                # float32 summation order differs (sharded); the float64 model-step test above checks exactness.
                torch.testing.assert_close(two[part][key], value, rtol=1e-4, atol=1e-4, msg=f"{part} {key}")
    initial = torch.tensor([math.log(1 / 0.5), math.log(2)])
    assert not torch.allclose(torch.stack(list(one["objective"].values())), initial)  # it was trained
