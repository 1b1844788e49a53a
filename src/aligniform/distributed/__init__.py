"""Multi-process training under ``torchrun``: process groups, global-batch losses and data sharding.

Each process (rank) encodes its shard of the batch; :func:`all_gather_with_grad`
concatenates every rank's features, in rank order, so that every rank computes
the loss over the GLOBAL batch: the same negatives, the same value, and, after
:class:`~torch.nn.parallel.DistributedDataParallel` averages the gradients,
the same parameter update as one process running the whole batch. Without
``torchrun`` every function here degrades to its single-process meaning
(the gather is the identity, the reductions return their input), so a trainer
needs no ``if distributed:`` branches.

Modules: ``context`` (joining the job), ``gather`` (the global batch, with
gradient), ``shard`` (:class:`Shard` and :func:`global_loss`: each rank
computes only its own rows of the loss), ``collectives`` (mean, broadcast,
barrier, gradient averaging), ``data_shards`` (per-rank samples and seeds),
``batchnorm`` (synchronised BatchNorm, on CPU too) and ``ddp`` (the DDP
wrapper). Typical use in a training step::

    ctx = init_distributed()                       # reads torchrun's environment
    model = wrap_ddp(convert_sync_batchnorm(model, ctx), ctx)
    for epoch in range(epochs):
        for batch in shard_indices(n, ctx.rank, ctx.world_size, seed, epoch).split(local_batch):
            z = model(torch.cat([view1[batch], view2[batch]]))   # one forward for both views
            x, y = z.chunk(2)
            loss = global_loss(objective, x, y)     # each rank computes its rows' share
            loss.backward()
            average_gradients(objective.parameters())  # a learnable temperature (DDP does the model)
    cleanup_distributed()

The backend is ``nccl`` when the processes use CUDA and ``gloo`` otherwise.
See ``docs/distributed.md`` for the derivation of the gather's gradient and the
``torchrun`` commands.
"""

from .batchnorm import GlobalBatchNorm, convert_sync_batchnorm, convert_to_global_batchnorm, replace_batchnorm
from .collectives import average_gradients, barrier, broadcast_object, reduce_mean
from .context import DistributedContext, cleanup_distributed, init_distributed, is_multi_process
from .data_shards import seed_worker, shard_indices
from .ddp import unwrap_model, wrap_ddp
from .gather import all_gather_with_grad, all_reduce_sum, gather_pairs
from .shard import Shard, accepts_shard, global_loss

__all__ = [
    "DistributedContext",
    "GlobalBatchNorm",
    "Shard",
    "accepts_shard",
    "all_gather_with_grad",
    "all_reduce_sum",
    "average_gradients",
    "barrier",
    "broadcast_object",
    "cleanup_distributed",
    "convert_sync_batchnorm",
    "convert_to_global_batchnorm",
    "gather_pairs",
    "global_loss",
    "init_distributed",
    "is_multi_process",
    "reduce_mean",
    "replace_batchnorm",
    "seed_worker",
    "shard_indices",
    "unwrap_model",
    "wrap_ddp",
]
