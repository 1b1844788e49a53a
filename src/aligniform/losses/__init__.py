"""Losses on the hypersphere: pure functions plus an ``nn.Module`` for each.

One loss per file; all share input checks (:mod:`aligniform._validation`) and
run in at least float32 outside autocast (:mod:`aligniform._numerics`). Each
module subclasses :class:`Loss`; one that names its ``term`` is registered in
:data:`REGISTRY` and usable in :class:`aligniform.Objective` specs.
"""

# isort: off
# The order of registration is the order objective specs list the terms in; a new loss goes last.
from .base import LEARNABLE, REGISTRY, Learn, LearnedValue, Loss, learn
from .align import AlignLoss, align_loss
from .uniform import UniformLoss, two_view_uniform_loss, uniform_loss
from .contrastive import ContrastiveLoss, NTXentLoss, contrastive_loss, nt_xent_loss
from .hard_contrastive import HardContrastiveLoss, hard_contrastive_loss
from .simple import SimpleLoss, simple_loss
from .asymptotic import AsymptoticContrastiveLoss, asymptotic_contrastive_loss
from .supcon import SupervisedContrastiveLoss, supervised_contrastive_loss
from .decoupled import DecoupledContrastiveLoss, decoupled_contrastive_loss
from .debiased import DebiasedContrastiveLoss, debiased_contrastive_loss
from .sigmoid import SigmoidLoss, sigmoid_loss
from .logistic import AroraLogisticLoss, arora_logistic_loss
from .barlow_twins import BarlowTwinsLoss, barlow_twins_loss
# isort: on

__all__ = [
    "LEARNABLE",
    "REGISTRY",
    "Learn",
    "LearnedValue",
    "Loss",
    "learn",
    "AlignLoss",
    "AroraLogisticLoss",
    "AsymptoticContrastiveLoss",
    "BarlowTwinsLoss",
    "ContrastiveLoss",
    "DebiasedContrastiveLoss",
    "DecoupledContrastiveLoss",
    "HardContrastiveLoss",
    "NTXentLoss",
    "SigmoidLoss",
    "SimpleLoss",
    "SupervisedContrastiveLoss",
    "UniformLoss",
    "align_loss",
    "arora_logistic_loss",
    "asymptotic_contrastive_loss",
    "barlow_twins_loss",
    "contrastive_loss",
    "debiased_contrastive_loss",
    "decoupled_contrastive_loss",
    "hard_contrastive_loss",
    "nt_xent_loss",
    "sigmoid_loss",
    "simple_loss",
    "supervised_contrastive_loss",
    "two_view_uniform_loss",
    "uniform_loss",
]
