"""Per-epoch learning-rate schedules of the papers' recipes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def build_scheduler(
    optimizer: torch.optim.Optimizer, schedule: str, epochs: int, milestones: Sequence[int], decay: float
) -> torch.optim.lr_scheduler.LRScheduler:
    """``step``: × decay at each milestone epoch (the paper's 155/170/185 of 200);
    ``cosine``: cosine annealing to 0 over the run; ``constant``: no change.
    Stepped once per epoch.
    """
    if schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=decay)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda epoch: 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up: the fraction of the scheduled learning rate used at optimiser ``step`` (counted from 1).

    Rises as ``step / warmup_steps`` to 1 at the last warm-up step, then stays 1; ``warmup_steps = 0`` is no
    warm-up. Applied per step on top of the per-epoch schedule (Goyal et al. 2017; SimCLR's recipe).

    Examples:
        >>> [warmup_factor(step, 4) for step in (1, 2, 4, 5)]
        [0.25, 0.5, 1.0, 1.0]
        >>> warmup_factor(1, 0)
        1.0
    """
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, step / warmup_steps)


def set_warmup(optimizer: torch.optim.Optimizer, scheduled: Sequence[float], factor: float, enabled: bool) -> None:
    """Set each parameter group's lr to its ``scheduled`` value times the warm-up ``factor`` (no-op unless ``enabled``).

    Examples:
        >>> optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.4)
        >>> set_warmup(optimizer, [0.4], 0.25, enabled=True)
        >>> optimizer.param_groups[0]["lr"]
        0.1
    """
    if enabled:
        for group, lr in zip(optimizer.param_groups, scheduled, strict=True):
            group["lr"] = lr * factor


def follow_schedule(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
    """Set the learning rate the schedule gives at the scheduler's (restored) epoch.

    A cosine schedule depends on ``epochs``; when ``resume`` extends the run, the rest of it follows the new
    schedule. (For an unchanged schedule this recomputes the very value the last step set.) A step schedule
    multiplies the lr it finds, so it is left as restored.
    """
    if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        epoch = scheduler.last_epoch
        for group, rule, base in zip(optimizer.param_groups, scheduler.lr_lambdas, scheduler.base_lrs, strict=True):
            group["lr"] = base * rule(epoch)
