"""A process's share of the global batch, for losses that compute only their own rows.

With ``P`` processes, rank ``r`` holds rows ``[start, stop)`` of a global batch
of ``size`` rows. A *sharded* loss is called with this rank's rows and a
:class:`Shard`; it computes only its own anchors' terms (against gathered
candidates) and combines the ranks' partial results with the shard's
differentiable collectives, so it returns the loss of the whole global batch,
the same value on every rank, while each rank does about ``1/P`` of the work.

The collectives follow the convention of :func:`~aligniform.distributed.all_gather_with_grad`:
every rank's output is the same global quantity, and each collective's backward
hands a rank's input the SUM over ranks of the gradients arriving at the
outputs. Every rank returns the same loss ``L``, so rank ``r``'s local rows get
``P · ∂L/∂x_r`` in total and DistributedDataParallel's averaging over the ``P``
ranks leaves exactly the one-process gradient, however the work was split
(derivation in ``docs/distributed.md``). A parameter that is not in a DDP
module (a learnable temperature) must be averaged the same way:
:func:`~aligniform.distributed.average_gradients`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch.autograd.function import once_differentiable

from .. import _validation
from .context import is_multi_process
from .gather import _AllGatherWithGrad, _exchange_row_counts, all_gather_with_grad, all_reduce_sum, gather_pairs

__all__ = ["Shard", "accepts_shard", "global_loss"]

T = TypeVar("T")


class Shard:
    """This process's rows ``[start, stop)`` of a global batch split over the ranks as ``counts``.

    Build one per step with :meth:`of` (one small collective: the ranks' row
    counts) and pass it to every sharded loss of that step. The losses then
    call :meth:`gather` for the candidates they need (each of the two views is
    gathered at most once per step, however many losses ask), and
    combine their per-rank results with :meth:`sum`, :meth:`mean` or
    :meth:`logsumexp`. Every rank must make the same calls in the same order
    (they are collectives); sharded losses do, since their control flow depends
    only on shapes and options that every rank shares.

    Args:
        rank: this process's rank.
        counts: every rank's number of rows, in rank order (with more than one,
            the collectives need the process group of those ranks).
        views: this rank's ``x`` (and ``y``): :meth:`gather` of either returns
            its global rows, gathered once.

    Examples:
        >>> import torch
        >>> x = torch.randn(5, 3)
        >>> shard = Shard.of(x)              # one process: rank 0 holds all 5 rows
        >>> shard.start, shard.stop, shard.size
        (0, 5, 5)
        >>> shard.gather(x) is x
        True
    """

    def __init__(self, rank: int, counts: Sequence[int], views: Sequence[torch.Tensor] = ()):
        counts = tuple(int(count) for count in counts)
        if not counts or any(count < 0 for count in counts) or not 0 <= rank < len(counts):
            raise ValueError(
                f"a shard needs a rank in [0, {len(counts)}) and non-negative counts, got {rank}, {counts}"
            )
        self.rank, self.counts = int(rank), counts
        self._views = tuple(views)
        self._gathered: list[torch.Tensor | None] = [None] * len(self._views)

    @classmethod
    def of(cls, x: torch.Tensor, y: torch.Tensor | None = None) -> Shard:
        """The shard of this rank's ``(n_r, ...)`` rows (and their positives ``y``), learning every rank's count.

        Raises:
            ValueError: ``x`` and ``y`` differ in shape, dtype or device, or the ranks' tensors disagree in
                anything but the number of rows (raised on every rank alike).
        """
        if not isinstance(x, torch.Tensor) or (y is not None and not isinstance(y, torch.Tensor)):
            raise ValueError("Shard.of expects tensors")
        if x.dim() == 0:
            raise ValueError("Shard.of needs a tensor with a row dimension, got a 0-dim tensor")
        if y is not None and (x.shape != y.shape or x.dtype != y.dtype or x.device != y.device):
            raise ValueError(
                f"x and y must have the same shape, dtype and device (one row per positive pair), got "
                f"{tuple(x.shape)} {x.dtype} {x.device} and {tuple(y.shape)} {y.dtype} {y.device}"
            )
        views = (x,) if y is None else (x, y)
        if not is_multi_process():
            return cls(0, (x.shape[0],), views)
        # The header exchange checks that every rank agrees on dtype and trailing shape (y is x's shape).
        counts = _exchange_row_counts(x)
        return cls(dist.get_rank(), counts, views)

    # ------------------------------------------------------------------ where this rank sits

    @property
    def world_size(self) -> int:
        """Number of ranks."""
        return len(self.counts)

    @property
    def size(self) -> int:
        """Rows of the global batch (``N``)."""
        return sum(self.counts)

    @property
    def start(self) -> int:
        """Global index of this rank's first row."""
        return sum(self.counts[: self.rank])

    @property
    def stop(self) -> int:
        """Global index after this rank's last row."""
        return self.start + self.counts[self.rank]

    @property
    def is_distributed(self) -> bool:
        """Whether the collectives talk to other ranks (else each is the identity)."""
        return self.world_size > 1

    def local(self, values: torch.Tensor) -> torch.Tensor:
        """This rank's rows ``[start, stop)`` of a global ``(N, ...)`` tensor."""
        return values[self.start : self.stop]

    def blocks(self, values: torch.Tensor) -> list[torch.Tensor]:
        """A global ``(N, ...)`` tensor split into every rank's rows, in rank order."""
        return list(values.split(list(self.counts)))

    # ------------------------------------------------------------------ collectives (differentiable)

    def gather(self, local: torch.Tensor) -> torch.Tensor:
        """The global ``(N, ...)`` rows of a per-row tensor of this rank, with gradient.

        ``x`` and ``y`` of :meth:`of` are gathered once each per shard, however
        many losses ask; any other tensor (e.g. a normalised copy) each time.
        """
        if local.shape[0] != self.counts[self.rank]:
            raise ValueError(f"this rank holds {self.counts[self.rank]} rows, got a tensor of {local.shape[0]}")
        if not self.is_distributed:
            return local
        for index, view in enumerate(self._views):
            if local is view:
                # Each view is gathered once per step, and only if a loss needs it (a contrastive
                # loss needs only the other view: half the traffic of gathering both).
                gathered = self._gathered[index]
                if gathered is None:
                    gathered = self._gathered[index] = _gather(local, self.counts)
                return gathered
        return _gather(local, self.counts)

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of a same-shaped tensor, with gradient."""
        return all_reduce_sum(value) if self.is_distributed else value

    def mean(self, terms: torch.Tensor) -> torch.Tensor:
        """The mean of every rank's ``terms`` taken together (ranks may hold different numbers of them).

        Examples:
            >>> import torch
            >>> Shard(0, (3,)).mean(torch.tensor([1.0, 2.0, 6.0]))
            tensor(3.)
        """
        if not self.is_distributed:
            return terms.mean()
        count = torch.tensor(float(terms.numel()), dtype=terms.dtype, device=terms.device)
        total, number = all_reduce_sum(torch.stack([terms.sum(), count])).unbind()
        return total / number.detach()

    def logsumexp(self, value: torch.Tensor) -> torch.Tensor:
        """Elementwise ``log Σ_ranks exp(value_r)`` of a same-shaped tensor, with gradient.

        ``-inf`` (nothing summed on a rank) is allowed; an entry that is ``-inf``
        on every rank stays ``-inf`` with zero gradient.

        Examples:
            >>> import torch
            >>> Shard(0, (4,)).logsumexp(torch.tensor([0.0, -float("inf")]))
            tensor([0., -inf])
        """
        if not self.is_distributed:
            return value
        combined: torch.Tensor = _AllReduceLogSumExp.apply(value)
        return combined

    def checked(self, check: Callable[[], T]) -> T:
        """Run a rank's input checks so that, if any rank's fail, every rank raises.

        A rank that raised alone would leave the others waiting in the loss's
        next collective. With input checks switched off
        (:func:`aligniform.set_input_checks`) or one process, ``check`` just runs.

        Raises:
            ValueError: the error of this rank (any exception its check raised, re-raised as it was), or one
                naming the rank whose check failed.
        """
        if not self.is_distributed or not _validation._CHECKS_ENABLED:
            return check()
        result: Any = None
        failure: Exception | None = None
        message: str | None = None
        try:
            result = check()
        except Exception as error:  # not only a refused input: any failure must reach the other ranks
            failure, message = error, str(error) or type(error).__name__
        messages: list[str | None] = [None] * self.world_size
        dist.all_gather_object(messages, message)
        if failure is not None:
            raise failure
        failed = [(rank, text) for rank, text in enumerate(messages) if text is not None]
        if failed:
            rank, text = failed[0]
            raise ValueError(f"rank {rank}'s inputs failed the loss's checks: {text}")
        checked_result: T = result
        return checked_result

    def __repr__(self) -> str:
        return f"Shard(rank={self.rank}, counts={self.counts})"


def _gather(local: torch.Tensor, counts: tuple[int, ...]) -> torch.Tensor:
    gathered: torch.Tensor = _AllGatherWithGrad.apply(local, counts)
    return gathered


class _AllReduceLogSumExp(torch.autograd.Function):
    """Forward: every rank's tensor gathered, then log-sum-exp over ranks (the same bits on every rank).

    Backward: the output on rank q depends on every rank's input, so rank r's
    input gets ``exp(v_r - out) · Σ_q grad_q``: one all-reduce of the gradient.
    """

    @staticmethod
    def forward(ctx: Any, value: torch.Tensor) -> torch.Tensor:
        value = value.contiguous()
        pieces = [torch.empty_like(value) for _ in range(dist.get_world_size())]
        dist.all_gather(pieces, value)
        out = torch.logsumexp(torch.stack(pieces), dim=0)
        ctx.save_for_backward(value, out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        value, out = ctx.saved_tensors
        total = grad_output.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        weight = torch.where(torch.isfinite(out), torch.exp(value - out), torch.zeros_like(out))
        return weight * total


def accepts_shard(loss: Callable[..., Any]) -> bool:
    """Whether a callable takes a ``shard`` keyword: then it can be called with this rank's rows only.

    Examples:
        >>> from aligniform import align_loss, Objective
        >>> accepts_shard(align_loss), accepts_shard(Objective.parse("uniform(t=2)")), accepts_shard(len)
        (True, True, False)
    """
    # A module's __call__ takes (*args, **kwargs): its forward tells.
    target = loss.forward if isinstance(loss, torch.nn.Module) else loss
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False
    shard = parameters.get("shard")
    return shard is not None and shard.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def global_loss(
    objective: Callable[..., torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    queue: torch.Tensor | None = None,
    *,
    sharded: bool = True,
    **options: Any,
) -> torch.Tensor:
    """``objective`` over the global batch of every rank's ``(x, y)``: the same value on every rank.

    Under ``torchrun``, an objective that accepts a ``shard`` keyword (every
    loss of :mod:`aligniform.losses`, :class:`aligniform.Objective`, their
    modules and ``functools.partial`` of them) is called with this rank's rows
    and a :class:`Shard`: each rank computes only its own anchors' terms
    against the gathered candidates, so the loss's work and memory per rank
    fall by about the number of processes. Any other callable (or
    ``sharded=False``) gets the gathered global batch on every rank, which
    computes the whole loss. Either way every rank returns the loss of one
    process holding the whole batch and, after DDP's gradient averaging, its
    gradient too (see :func:`~aligniform.distributed.all_gather_with_grad`). A ``queue`` is passed as
    is: keep it the same on every rank (enqueue the gathered, detached keys).

    Args:
        objective: ``objective(x, y[, queue=...], **options)``: an
            :class:`aligniform.Objective`, a loss module, or e.g.
            ``functools.partial(contrastive_loss, tau=0.5)``.
        x: this rank's ``(n_r, d)`` first views.
        y: this rank's ``(n_r, d)`` second views.
        queue: optional ``(K, d)`` negatives without gradient.
        sharded: split the loss's work over the ranks when the objective can.
        **options: further keywords for the objective (e.g. ``moco=True``).

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
    if queue is not None:
        options = {"queue": queue, **options}
    if not is_multi_process():
        return objective(x, y, **options)
    if sharded and accepts_shard(objective):
        return objective(x, y, shard=Shard.of(x, y), **options)
    global_x, global_y = gather_pairs(x, y)
    if isinstance(options.get("labels"), torch.Tensor):
        # per-row labels belong to this rank's rows: the whole-batch call needs every rank's
        options["labels"] = all_gather_with_grad(options["labels"])
    return objective(global_x, global_y, **options)
