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
