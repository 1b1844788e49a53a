"""Where a process sits in a ``torchrun`` job: joining and leaving the process group."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from .._validation import check_positive
from ..device import resolve_device, resolve_indexed_device
from ..errors import OptionError

__all__ = ["DistributedContext", "cleanup_distributed", "init_distributed", "is_multi_process"]


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


def init_distributed(device: str | torch.device = "auto", timeout_s: float = 600) -> DistributedContext:
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
        return DistributedContext(device=resolve_indexed_device(device))
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


def _process_device(device: str | torch.device, local_rank: int) -> torch.device:
    """The device of one torchrun process: cpu, or cuda:LOCAL_RANK."""
    parsed = resolve_device(device)
    if parsed.type == "cpu":
        return parsed
    if parsed.type != "cuda":
        raise ValueError(f"distributed training runs on 'cpu' (gloo) or 'cuda' (nccl), got device {device!r}")
    if parsed.index is not None and parsed.index != local_rank:
        raise OptionError(
            f"under torchrun each process uses cuda:LOCAL_RANK (here cuda:{local_rank}); "
            f"set `device` to 'cuda' instead of {device!r}"
        )
    if local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"LOCAL_RANK={local_rank} but this node has {torch.cuda.device_count()} GPU(s); "
            "start at most one process per GPU (--nproc_per_node)"
        )
    return torch.device("cuda", local_rank)


def _existing_group_context(device: str | torch.device, local_rank: int) -> DistributedContext:
    backend = str(dist.get_backend())
    if backend == "nccl":
        process_device = torch.device("cuda", torch.cuda.current_device())
    elif dist.get_world_size() > 1:
        process_device = torch.device("cpu")  # gloo moves CPU tensors
    else:
        process_device = resolve_indexed_device(device)
    return DistributedContext(dist.get_rank(), dist.get_world_size(), local_rank, process_device, backend)
