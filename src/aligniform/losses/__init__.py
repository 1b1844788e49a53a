"""Losses on the hypersphere: pure functions plus an ``nn.Module`` for each.

One loss per file; all share input checks (:mod:`aligniform._validation`) and
run in at least float32 outside autocast (:mod:`aligniform._numerics`).
"""

from .align import AlignLoss, align_loss
from .asymptotic import AsymptoticContrastiveLoss, asymptotic_contrastive_loss
from .contrastive import ContrastiveLoss, contrastive_loss
from .hard_contrastive import HardContrastiveLoss, hard_contrastive_loss
from .simple import SimpleLoss, simple_loss
from .uniform import UniformLoss, two_view_uniform_loss, uniform_loss

__all__ = [
    "AlignLoss",
    "AsymptoticContrastiveLoss",
    "ContrastiveLoss",
    "HardContrastiveLoss",
    "SimpleLoss",
    "UniformLoss",
    "align_loss",
    "asymptotic_contrastive_loss",
    "contrastive_loss",
    "hard_contrastive_loss",
    "simple_loss",
    "two_view_uniform_loss",
    "uniform_loss",
]
