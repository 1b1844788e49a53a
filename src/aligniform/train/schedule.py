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
