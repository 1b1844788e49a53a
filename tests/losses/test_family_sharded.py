"""The issue-12 losses sharded across ranks: 2 real gloo processes against one process on the global batch.

Each rank holds its rows (unequal shards too), computes only its anchors' terms (SigLIP: its rows against every
rank's columns) and must return the global loss; its rows' gradient (after DDP's 1/P) and the learnable
parameters' gradients (averaged over the ranks) must equal one process's, in float64.
"""

import functools
import math

import pytest
import torch

from aligniform import (
    Objective,
    debiased_contrastive_loss,
    decoupled_contrastive_loss,
    sigmoid_loss,
    supervised_contrastive_loss,
)
from aligniform.distributed import Shard, cleanup_distributed, global_loss, init_distributed
from tests.support.distributed import launch, rows_of
from tests.support.sphere import leaves, noisy_pairs, unit_rows

DIM, QUEUE_SIZE, CLASSES = 5, 6, 3
SHARDS = [(3, 5), (4, 4), (1, 6)]
LOSS_TOLERANCE, GRAD_TOLERANCE = 1e-12, 1e-9


def _supcon(x, y, labels, queue, queue_labels, tau, shard=None):
    return supervised_contrastive_loss(x, y, labels, tau, queue, queue_labels, shard=shard)


# name -> (loss(x, y, labels, queue, queue_labels, tau, scale, bias, shard=...) , uses the queue)
CASES = {
    "supcon": (lambda x, y, lab, q, ql, tau, s, b, shard=None: _supcon(x, y, lab, None, None, tau, shard), False),
    "supcon_queue": (lambda x, y, lab, q, ql, tau, s, b, shard=None: _supcon(x, y, lab, q, ql, tau, shard), True),
    "decoupled": (
        lambda x, y, lab, q, ql, tau, s, b, shard=None: decoupled_contrastive_loss(x, y, tau, shard=shard),
        False,
    ),
    "decoupled_weighted_queue": (
        lambda x, y, lab, q, ql, tau, s, b, shard=None: decoupled_contrastive_loss(
            x, y, tau, weighted=True, sigma=0.4, queue=q, shard=shard
        ),
        True,
    ),
    "debiased": (
        lambda x, y, lab, q, ql, tau, s, b, shard=None: debiased_contrastive_loss(x, y, tau, 0.1, shard=shard),
        False,
    ),
    "hard_debiased_queue": (
        lambda x, y, lab, q, ql, tau, s, b, shard=None: debiased_contrastive_loss(
            x, y, tau, 0.2, beta=1.5, queue=q, shard=shard
        ),
        True,
    ),
    "sigmoid": (lambda x, y, lab, q, ql, tau, s, b, shard=None: sigmoid_loss(x, y, s.exp(), b, shard=shard), False),
}
OBJECTIVE = (
    "supervised_contrastive(tau=learn(0.3)) + decoupled_contrastive(tau=0.4) + sigmoid(scale=learn(5), bias=learn(-3))"
)


def _global_batch(n, seed=3):
    generator = torch.Generator().manual_seed(seed)
    x, y = noisy_pairs(n, DIM, 0.7, generator)
    queue = unit_rows(QUEUE_SIZE, DIM, generator)
    labels = torch.randint(0, CLASSES, (n,), generator=generator)
    queue_labels = torch.randint(0, CLASSES + 1, (QUEUE_SIZE,), generator=generator)
    return x, y, labels, queue, queue_labels


def _parameters():
    return leaves(0.3, math.log(6.0), -4.0)


def _loss_and_grads(name, batch, rows=None, world_size=1):
    """Value and gradients in (x, y, tau, log scale, bias): the plain call, or this rank's rows with a Shard."""
    x, y, labels, queue, queue_labels = batch
    if rows is not None:
        x, y, labels = x[rows], y[rows], labels[rows]
    x, y = leaves(x, y)
    tau, log_scale, bias = _parameters()
    loss_fn, uses_queue = CASES[name]
    shard = None if rows is None else Shard.of(x, y)
    q, ql = (queue, queue_labels) if uses_queue else (None, None)
    loss = loss_fn(x, y, labels, q, ql, tau, log_scale, bias, shard=shard)
    grads = torch.autograd.grad(loss, [x, y, tau, log_scale, bias], allow_unused=True)
    # Each rank's copy of the loss sends P · dL/d(its inputs); DDP (or average_gradients) divides by P.
    return loss.item(), [None if g is None else g / world_size for g in grads]


def _objective_step(batch, rows=None, world_size=1):
    x, y, labels, _, _ = batch
    if rows is not None:
        x, y, labels = x[rows], y[rows], labels[rows]
    objective = Objective.parse(OBJECTIVE).double()
    x, y = leaves(x, y)
    loss = global_loss(objective, x, y, labels=labels)
    parameters = list(objective.parameters())
    grads = torch.autograd.grad(loss, [x, y, *parameters])
    return loss.item(), [g / world_size for g in grads]


def _worker(rank):
    init_distributed(device="cpu", timeout_s=60)
    results = {}
    for counts in SHARDS:
        batch = _global_batch(sum(counts))
        rows = rows_of(rank, counts)
        for name in CASES:
            results[counts, name] = _loss_and_grads(name, batch, rows, len(counts))
        results[counts, "objective"] = _objective_step(batch, rows, len(counts))
        # Labels of the wrong length on one rank: every rank raises (none waits in a collective).
        try:
            bad = batch[2][rows] if rank == 0 else batch[2][rows][:-1]
            supervised_contrastive_loss(batch[0][rows], batch[1][rows], bad, 0.3, shard=Shard.of(batch[0][rows]))
            results[counts, "error"] = None
        except ValueError as error:
            results[counts, "error"] = str(error)
    cleanup_distributed()
    return results


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    return launch(_worker, tmp_path_factory.mktemp("family_sharded"), deadline_s=300)


def _compare(result, reference, rows, world_size, label, local=(0, 1)):
    loss, grads = result
    ref_loss, ref_grads = reference
    assert abs(loss - ref_loss) <= LOSS_TOLERANCE * max(1.0, abs(ref_loss)), (label, loss, ref_loss)
    for index in local:  # this rank's rows of the feature gradients
        torch.testing.assert_close(grads[index], ref_grads[index][rows], rtol=GRAD_TOLERANCE, atol=1e-13, msg=label)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_sharded_family_loss_matches_one_process(two_ranks, name):
    for counts in SHARDS:
        reference = _loss_and_grads(name, _global_batch(sum(counts)))
        for rank in range(len(counts)):
            _compare(two_ranks[rank][counts, name], reference, rows_of(rank, counts), len(counts), name)
        # Parameters outside DDP: the average over the ranks of their gradients is one process's.
        for index in (2, 3, 4):
            grads = [two_ranks[rank][counts, name][1][index] for rank in range(len(counts))]
            if reference[1][index] is None:
                assert all(g is None for g in grads), name
                continue
            torch.testing.assert_close(sum(grads), reference[1][index], rtol=GRAD_TOLERANCE, atol=1e-13, msg=name)


@pytest.mark.slow
def test_sharded_objective_with_labels_and_learnt_arguments(two_ranks):
    for counts in SHARDS:
        reference = _objective_step(_global_batch(sum(counts)))
        for rank in range(len(counts)):
            _compare(two_ranks[rank][counts, "objective"], reference, rows_of(rank, counts), len(counts), "objective")
        for index in range(2, len(reference[1])):
            total = sum(two_ranks[rank][counts, "objective"][1][index] for rank in range(len(counts)))
            torch.testing.assert_close(total, reference[1][index], rtol=GRAD_TOLERANCE, atol=1e-13)


@pytest.mark.slow
def test_bad_labels_on_one_rank_raise_on_every_rank(two_ranks):
    for counts in SHARDS:
        messages = [two_ranks[rank][counts, "error"] for rank in range(len(counts))]
        assert "one label per row" in messages[1]
        assert "rank 1" in messages[0] and "one label per row" in messages[0], messages


@pytest.mark.parametrize("name", list(CASES))
def test_one_rank_shard_is_the_plain_loss(name, monkeypatch):
    """Shard.of in one process: the sharded code path with identity collectives gives the plain loss."""
    for variable in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(variable, raising=False)
    batch = _global_batch(7)
    plain_loss, plain_grads = _loss_and_grads(name, batch)
    shard_loss, shard_grads = _loss_and_grads(name, batch, rows=slice(0, 7))
    assert shard_loss == pytest.approx(plain_loss, rel=1e-13)
    for a, b in zip(shard_grads, plain_grads):
        if b is None:
            assert a is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_supcon_objective_under_global_loss_in_one_process():
    x, y, labels, _, _ = _global_batch(6)
    objective = Objective.parse("supervised_contrastive(tau=0.3)")
    assert global_loss(objective, x, y, labels=labels).item() == pytest.approx(
        functools.partial(supervised_contrastive_loss, tau=0.3)(x, y, labels).item(), rel=1e-13
    )
