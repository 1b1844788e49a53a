"""Multi-process training under ``torchrun``: process groups, global-batch losses and data sharding.

Each process (rank) encodes its shard of the batch; :func:`all_gather_with_grad`
concatenates every rank's features, in rank order, so that every rank computes
the loss over the GLOBAL batch: the same negatives, the same value, and, after
:class:`~torch.nn.parallel.DistributedDataParallel` averages the gradients,
the same parameter update as one process running the whole batch. Without
``torchrun`` every function here degrades to its single-process meaning
(the gather is the identity, the reductions return their input), so a trainer
needs no ``if distributed:`` branches.

Typical use in a training step::

    ctx = init_distributed()                       # reads torchrun's environment
    model = wrap_ddp(convert_sync_batchnorm(model, ctx), ctx)
    for epoch in range(epochs):
        for batch in shard_indices(n, ctx.rank, ctx.world_size, seed, epoch).split(local_batch):
            z = model(torch.cat([view1[batch], view2[batch]]))   # one forward for both views
            x, y = z.chunk(2)
            loss = global_loss(objective, x, y)
            loss.backward()
    cleanup_distributed()

The backend is ``nccl`` when the processes use CUDA and ``gloo`` otherwise.
See ``docs/distributed.md`` for the derivation of the gather's gradient and the
``torchrun`` commands.
"""

from __future__ import annotations

import datetime
import os
import random
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.autograd.function import once_differentiable

from ._validation import check_positive

__all__ = [
    "DistributedContext",
    "all_gather_with_grad",
    "barrier",
    "broadcast_object",
    "cleanup_distributed",
    "convert_sync_batchnorm",
    "gather_pairs",
    "global_loss",
    "init_distributed",
    "is_multi_process",
    "reduce_mean",
    "seed_worker",
    "shard_indices",
    "unwrap_model",
    "wrap_ddp",
]

# The shape exchange before a gather sends a fixed-length header per rank:
# [ndim, dtype code, size_0, ..., size_{MAX_DIMS-1}].
_MAX_DIMS = 8
_DTYPE_CODES = {
    dtype: code
    for code, dtype in enumerate(
        (torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8, torch.bool)
    )
}
_DTYPE_NAMES = {code: str(dtype).removeprefix("torch.") for dtype, code in _DTYPE_CODES.items()}


# --------------------------------------------------------------------------- process group


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job: its rank, the number of processes and its device.

    Attributes:
        rank: global index of this process, 0 .. world_size - 1.
        world_size: number of processes in the job (1 without ``torchrun``).
        local_rank: index of this process on its node; it picks the GPU.
        device: the device this process computes on.
        backend: ``"nccl"``, ``"gloo"``, or ``None`` for a single process.

    Examples:
        >>> ctx = DistributedContext()
        >>> ctx.is_main, ctx.is_distributed
        (True, False)
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes logs, checkpoints and results."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """Whether more than one process takes part (a process group exists)."""
        return self.world_size > 1


def init_distributed(device: str = "auto", timeout_s: float = 600) -> DistributedContext:
    """Join the process group described by ``torchrun``'s environment, or run as a single process.

    Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) this initialises
    ``torch.distributed`` with the ``env://`` rendezvous (``MASTER_ADDR``,
    ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``): ``nccl`` when the processes use
    CUDA, each on ``cuda:LOCAL_RANK`` (set as the current device), ``gloo`` on
    CPU. Without those variables (or with ``WORLD_SIZE=1``) no process group is
    created and the context describes one process. Calling it again once a
    group exists returns that group's context.

    Args:
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or
            ``"cuda"``. A single process may also name any torch device
            (``"cuda:1"``, ``"mps"``); under ``torchrun`` the GPU index always
            comes from ``LOCAL_RANK``.
        timeout_s: seconds a rendezvous or collective may wait for the other
            ranks. With ``gloo`` a collective whose peer died or stalls raises
            ``RuntimeError`` after this time; with ``nccl`` the watchdog aborts
            the process after it (``TORCH_NCCL_ASYNC_ERROR_HANDLING``, on by
            default). Either way the job ends instead of hanging forever.

    Returns:
        The :class:`DistributedContext` of this process.

    Raises:
        ValueError: for an inconsistent torchrun environment (e.g. ``RANK``
            missing, no ``MASTER_ADDR``), an unknown device, CUDA requested but
            unavailable, or fewer GPUs than processes on the node.

    Examples:
        >>> ctx = init_distributed(device="cpu")   # no torchrun: a single process
        >>> ctx.world_size, ctx.backend
        (1, None)
    """
    timeout_s = check_positive(timeout_s, "timeout_s")
    rank, world_size, local_rank = _torchrun_ranks()
    if dist.is_available() and dist.is_initialized():
        return _existing_group_context(device, local_rank)
    if world_size == 1:
        return DistributedContext(device=_single_process_device(device))
    if not dist.is_available():
        raise ValueError("torchrun asked for several processes but this PyTorch build has no torch.distributed")
    _require_rendezvous_address()
    process_device = _process_device(device, local_rank)
    backend = "nccl" if process_device.type == "cuda" else "gloo"
    if process_device.type == "cuda":
        torch.cuda.set_device(process_device)
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
        # Binding the GPU up front lets NCCL create its communicator eagerly and
        # lets barrier() know which device to use.
        device_id=process_device if backend == "nccl" else None,
    )
    return DistributedContext(rank, world_size, local_rank, process_device, backend)


def cleanup_distributed() -> None:
    """Destroy the process group if one exists (a no-op otherwise).

    Examples:
        >>> cleanup_distributed()   # safe without a process group
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_multi_process() -> bool:
    """Whether a process group with more than one rank is active.

    Examples:
        >>> is_multi_process()
        False
    """
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _env_int(name: str) -> int:
    text = os.environ[name]
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {text!r}") from None


def _torchrun_ranks() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) when it is absent."""
    if "WORLD_SIZE" not in os.environ:
        return 0, 1, 0
    world_size = _env_int("WORLD_SIZE")
    if world_size < 1:
        raise ValueError(f"WORLD_SIZE must be at least 1, got {world_size}")
    if world_size == 1:
        return 0, 1, 0
    if "RANK" not in os.environ:
        raise ValueError("WORLD_SIZE is set but RANK is not; launch with torchrun, which sets both")
    rank = _env_int("RANK")
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK must lie in [0, WORLD_SIZE={world_size}), got {rank}")
    # A hand-made single-node launch may omit LOCAL_RANK; then it equals RANK.
    local_rank = _env_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ else rank
    if local_rank < 0:
        raise ValueError(f"LOCAL_RANK must be >= 0, got {local_rank}")
    return rank, world_size, local_rank


def _require_rendezvous_address() -> None:
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise ValueError(
            f"WORLD_SIZE > 1 but {' and '.join(missing)} not set; launch with "
            "`torchrun --nproc_per_node=P -m aligniform train ...`, which sets them"
        )


def resolve_device(device) -> torch.device:
    """'auto' -> cuda when available else cpu; a clear ValueError for unknown or unavailable devices."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or a torch device string") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use device='cpu' or 'auto'")
    return parsed


def _single_process_device(device) -> torch.device:
    parsed = resolve_device(device)
    if parsed.type == "cuda" and parsed.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return parsed


def _process_device(device, local_rank: int) -> torch.device:
    """The device of one torchrun process: cpu, or cuda:LOCAL_RANK."""
    parsed = resolve_device(device)
    if parsed.type == "cpu":
        return parsed
    if parsed.type != "cuda":
        raise ValueError(f"distributed training runs on 'cpu' (gloo) or 'cuda' (nccl), got device {device!r}")
    if parsed.index is not None and parsed.index != local_rank:
        raise ValueError(
            f"under torchrun each process uses cuda:LOCAL_RANK (here cuda:{local_rank}); "
            f"pass device='cuda' instead of {device!r}"
        )
    if local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"LOCAL_RANK={local_rank} but this node has {torch.cuda.device_count()} GPU(s); "
            "start at most one process per GPU (--nproc_per_node)"
        )
    return torch.device("cuda", local_rank)


def _existing_group_context(device, local_rank: int) -> DistributedContext:
    backend = str(dist.get_backend())
    if backend == "nccl":
        process_device = torch.device("cuda", torch.cuda.current_device())
    elif dist.get_world_size() > 1:
        process_device = torch.device("cpu")  # gloo moves CPU tensors
    else:
        process_device = _single_process_device(device)
    return DistributedContext(dist.get_rank(), dist.get_world_size(), local_rank, process_device, backend)


# --------------------------------------------------------------------------- the global batch


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``(n_r, ...)`` tensor along dim 0, in rank order, keeping the gradient.

    Ranks may hold different numbers of rows ``n_r`` (the last batch of an
    epoch, say); the trailing dimensions and the dtype must agree. Without a
    process group, or with one process, the input is returned unchanged.

    Gradient: every rank computes the same loss ``L`` of the gathered batch
    ``X = [x_0; ...; x_{P-1}]`` and DistributedDataParallel then averages the
    parameter gradients over the ``P`` ranks. On rank r autograd only reaches
    the parameters through the local block ``x_r`` (the other blocks arrived
    over the network), so the backward gives ``x_r`` the SUM over ranks of the
    gradient each rank's copy of the loss sends to block r (an all-reduce of
    the incoming gradient, then this rank's rows). With identical losses that
    is ``P · ∂L/∂x_r``, and DDP's division by ``P`` leaves exactly
    ``Σ_r (∂L/∂x_r)(∂x_r/∂θ) = ∂L/∂θ``: the single-process gradient on the
    whole batch. Returning only the local slice would make every update ``P``
    times too small. When the ranks' losses differ (per-rank queues, say) the
    result is the exact gradient of their mean.

    Every rank must call this, the same number of times and in the same order,
    and use the result in its loss: the backward is a collective too.

    Args:
        tensor: this rank's ``(n_r, ...)`` tensor (rows may be 0).

    Returns:
        ``(Σ_r n_r, ...)`` tensor on every rank, differentiable with respect to ``tensor``.

    Raises:
        ValueError: when the ranks' tensors differ in trailing shape, number
            of dimensions or dtype (raised on every rank alike, so none hangs).

    Examples:
        >>> import torch
        >>> x = torch.randn(4, 8, requires_grad=True)
        >>> all_gather_with_grad(x) is x          # a single process: the identity
        True
    """
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"all_gather_with_grad expects a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() == 0:
        raise ValueError("all_gather_with_grad needs a tensor with a row dimension, got a 0-dim tensor")
    if not is_multi_process():
        return tensor
    return _AllGatherWithGrad.apply(tensor)


class _AllGatherWithGrad(torch.autograd.Function):
    """Forward: all_gather with padding for unequal rows. Backward: all_reduce(SUM), then this rank's rows."""

    @staticmethod
    def forward(ctx, tensor):
        row_counts = _exchange_row_counts(tensor)
        rank = dist.get_rank()
        start = sum(row_counts[:rank])
        ctx.rows = (start, start + row_counts[rank])
        return _gather_rows(tensor.contiguous(), row_counts)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        # A copy: the all-reduce works in place and autograd may still own grad_output.
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start, stop = ctx.rows
        return grad[start:stop]


def _shape_header(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.dim() > _MAX_DIMS:
        raise ValueError(f"all_gather_with_grad supports up to {_MAX_DIMS} dimensions, got {tensor.dim()}")
    sizes = list(tensor.shape) + [0] * (_MAX_DIMS - tensor.dim())
    dtype_code = _DTYPE_CODES.get(tensor.dtype, -1)
    return torch.tensor([tensor.dim(), dtype_code, *sizes], dtype=torch.int64, device=tensor.device)


def _exchange_row_counts(tensor: torch.Tensor) -> list[int]:
    """Every rank's row count, after checking that all ranks agree on everything but the rows."""
    header = _shape_header(tensor)
    headers = [torch.empty_like(header) for _ in range(dist.get_world_size())]
    dist.all_gather(headers, header)
    table = torch.stack(headers).cpu()
    # Everything but the row count (column 2) must agree. Every rank sees the
    # same table, so every rank raises alike and none is left waiting.
    agreed = torch.cat([table[:, :2], table[:, 3:]], dim=1)
    if not bool((agreed == agreed[0]).all()):
        shapes = [tuple(row[2 : 2 + int(row[0])].tolist()) for row in table]
        dtypes = [_DTYPE_NAMES.get(int(code), "other") for code in table[:, 1]]
        raise ValueError(
            "all_gather_with_grad: the ranks' tensors must agree in dtype and in every dimension but "
            f"the first; got shapes {shapes} and dtypes {dtypes} by rank"
        )
    return table[:, 2].tolist()


def _gather_rows(tensor: torch.Tensor, row_counts: list[int]) -> torch.Tensor:
    """all_gather of tensors whose row counts differ: pad to the largest, gather, trim, concatenate."""
    most_rows = max(row_counts)
    padding = most_rows - tensor.shape[0]
    padded = torch.cat([tensor, tensor.new_zeros((padding, *tensor.shape[1:]))]) if padding else tensor
    pieces = [torch.empty_like(padded) for _ in row_counts]
    dist.all_gather(pieces, padded)
    return torch.cat([piece[:rows] for piece, rows in zip(pieces, row_counts)])


def gather_pairs(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The global ``(X, Y)`` of two views, with gradient, in one collective.

    Row i of ``X`` stays paired with row i of ``Y``: both come from the same
    rank and position. The views travel stacked, so a step costs one
    all-gather (and one all-reduce in backward) instead of two.

    Args:
        x: this rank's ``(n_r, d)`` features of the first views.
        y: this rank's ``(n_r, d)`` features of the second views.

    Returns:
        ``(X, Y)``, each ``(Σ_r n_r, d)``; ``(x, y)`` themselves for a single process.

    Examples:
        >>> import torch
        >>> x, y = torch.randn(2, 4, 8).unbind(0)
        >>> X, Y = gather_pairs(x, y)
        >>> X.shape
        torch.Size([4, 8])
    """
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise ValueError("gather_pairs expects two tensors")
    if x.shape != y.shape or x.dtype != y.dtype or x.device != y.device:
        raise ValueError(
            f"x and y must have the same shape, dtype and device (one row per positive pair), got "
            f"{tuple(x.shape)} {x.dtype} {x.device} and {tuple(y.shape)} {y.dtype} {y.device}"
        )
    if not is_multi_process():
        return x, y
    both = all_gather_with_grad(torch.stack([x, y], dim=1))
    return both[:, 0], both[:, 1]


def global_loss(objective, x: torch.Tensor, y: torch.Tensor, queue: torch.Tensor | None = None) -> torch.Tensor:
    """``objective`` over the global batch: gather both views from every rank, then apply it.

    Every rank returns the same value, the loss of one process holding the
    whole batch, and after DDP's gradient averaging the same gradient too (see
    :func:`all_gather_with_grad`). A ``queue`` is passed as is: keep it the
    same on every rank (enqueue the gathered, detached keys) so the losses agree.

    Args:
        objective: a callable ``objective(x, y)``, or ``objective(x, y, queue=...)``
            when a queue is given: an :class:`aligniform.Objective`, a loss
            module, or e.g. ``functools.partial(contrastive_loss, tau=0.5)``.
        x: this rank's ``(n_r, d)`` first views.
        y: this rank's ``(n_r, d)`` second views.
        queue: optional ``(K, d)`` negatives without gradient.

    Returns:
        The scalar loss of the global batch.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform import Objective
        >>> x, y = F.normalize(torch.randn(2, 16, 8), dim=-1)
        >>> objective = Objective.parse("align(alpha=2) + uniform(t=2)")
        >>> torch.equal(global_loss(objective, x, y), objective(x, y))
        True
    """
    global_x, global_y = gather_pairs(x, y)
    if queue is None:
        return objective(global_x, global_y)
    return objective(global_x, global_y, queue=queue)


# --------------------------------------------------------------------------- helpers for a trainer


def _collective_device() -> torch.device:
    """NCCL only moves CUDA tensors; gloo works on CPU tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def reduce_mean(value):
    """Mean of a number or tensor over all ranks (e.g. for logging); the value itself for one process.

    Args:
        value: a Python number or a tensor (same shape on every rank).

    Returns:
        A float for a number; for a tensor, a detached floating tensor on the
        input's device.

    Examples:
        >>> reduce_mean(2.5)
        2.5
    """
    if not is_multi_process():
        return value
    if isinstance(value, torch.Tensor):
        dtype = value.dtype if value.is_floating_point() else torch.float64
        total = value.detach().to(device=_collective_device(), dtype=dtype, copy=True)
    else:
        total = torch.tensor(float(value), dtype=torch.float64, device=_collective_device())
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    mean = total / dist.get_world_size()
    return mean.to(value.device) if isinstance(value, torch.Tensor) else float(mean)


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s picklable ``obj`` on every rank (e.g. a run directory chosen by rank 0).

    Examples:
        >>> broadcast_object({"run": "runs/a"})
        {'run': 'runs/a'}
    """
    if not is_multi_process():
        return obj
    if not 0 <= src < dist.get_world_size():
        raise ValueError(f"src must be a rank in [0, {dist.get_world_size()}), got {src}")
    holder = [obj if dist.get_rank() == src else None]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def barrier() -> None:
    """Wait until every rank arrives (a no-op for one process).

    Examples:
        >>> barrier()
    """
    if not is_multi_process():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def seed_worker(seed: int, rank: int | None = None) -> int:
    """Seed Python's, NumPy's and torch's generators for this rank and return the seed used.

    Rank 0 uses ``seed`` itself (so a one-process run is unchanged); other
    ranks use a seed derived from ``(seed, rank)``, so their augmentations
    differ but stay reproducible. Model initialisation need not match across
    ranks: DDP copies rank 0's parameters when it wraps the model.

    Args:
        seed: the experiment's seed.
        rank: this process's rank (default: the current rank, 0 without a group).

    Examples:
        >>> seed_worker(7, rank=0)
        7
        >>> seed_worker(7, rank=1) != 7
        True
    """
    if rank is None:
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    seed, rank = int(seed), int(rank)
    if rank == 0:
        process_seed = seed
    else:
        # SeedSequence mixes (seed, rank) so that e.g. (0, 1) and (1, 0) do not collide.
        process_seed = int(np.random.SeedSequence([seed % 2**64, rank]).generate_state(1)[0])
    random.seed(process_seed)
    np.random.seed(process_seed % 2**32)
    torch.manual_seed(process_seed)
    return process_seed


def shard_indices(
    n: int,
    rank: int,
    world_size: int,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = True,
    shuffle: bool = True,
) -> torch.Tensor:
    """This rank's sample indices for one epoch of an in-memory dataset of ``n`` samples.

    Exactly the indices of ``torch.utils.data.DistributedSampler(dataset,
    world_size, rank, shuffle, seed, drop_last)`` after ``set_epoch(epoch)``:
    a permutation drawn from ``seed + epoch`` (the same on every rank), cut to
    a multiple of ``world_size`` (``drop_last``) or padded by wrapping around,
    then rank r takes positions ``r, r + P, r + 2P, ...``. The ranks' shards
    are disjoint (with ``drop_last``) and equally long, so every rank runs the
    same number of steps and no collective waits for a rank that has finished.

    Args:
        n: dataset size.
        rank: this process's rank.
        world_size: number of processes.
        seed: experiment seed.
        epoch: epoch number; each epoch gets a new permutation.
        drop_last: drop the last ``n % world_size`` samples of the permutation
            instead of repeating its first ones.
        shuffle: permute (training) or keep the order (evaluation).

    Returns:
        1-D int64 tensor of ``n // world_size`` (``drop_last``) or
        ``ceil(n / world_size)`` indices.

    Examples:
        >>> a = shard_indices(10, rank=0, world_size=2, seed=0, epoch=3)
        >>> b = shard_indices(10, rank=1, world_size=2, seed=0, epoch=3)
        >>> sorted(a.tolist() + b.tolist()) == list(range(10))
        True
    """
    n, rank, world_size = int(n), int(rank), int(world_size)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, world_size={world_size}), got {rank}")
    if shuffle:
        generator = torch.Generator().manual_seed(int(seed) + int(epoch))
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.arange(n)
    if drop_last:
        order = order[: n - n % world_size]
    elif n % world_size:
        if n == 0:
            return order
        padded_size = -(-n // world_size) * world_size
        order = order.repeat(-(-padded_size // n))[:padded_size]
    return order[rank::world_size]


def convert_sync_batchnorm(model: nn.Module, ctx: DistributedContext) -> nn.Module:
    """Replace BatchNorm layers by synchronised ones when several processes train together.

    Plain BatchNorm normalises each rank's shard with that shard's statistics;
    synchronised BatchNorm uses the global batch's, as one process would. On
    CUDA this is PyTorch's fused ``nn.SyncBatchNorm``; PyTorch's only works on
    CUDA tensors, so on CPU (gloo) it is aligniform's
    :class:`~aligniform.sync_batchnorm.GlobalBatchNorm`.

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        >>> convert_sync_batchnorm(model, DistributedContext()) is model
        True
    """
    if not ctx.is_distributed:
        return model
    if not any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules()):
        return model
    if ctx.device.type != "cuda":
        from .sync_batchnorm import convert_to_global_batchnorm

        return convert_to_global_batchnorm(model)
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap_ddp(model: nn.Module, ctx: DistributedContext, **ddp_options) -> nn.Module:
    """Move ``model`` to the context's device and, for several processes, wrap it in DDP.

    Args:
        model: the encoder (whole, before any gather).
        ctx: this process's context.
        **ddp_options: passed to :class:`~torch.nn.parallel.DistributedDataParallel`.

    Examples:
        >>> from torch import nn
        >>> wrap_ddp(nn.Linear(4, 2), DistributedContext())
        Linear(in_features=4, out_features=2, bias=True)
    """
    model = model.to(ctx.device)
    if not ctx.is_distributed:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, **ddp_options)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (what a checkpoint should save); other models as they are.

    Examples:
        >>> from torch import nn
        >>> layer = nn.Linear(2, 2)
        >>> unwrap_model(layer) is layer
        True
    """
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
