"""aligniform: alignment, uniformity and contrastive learning on the hypersphere.

The functional API mirrors ``torch.nn.functional``: every loss is a pure
function of ``(N, d)`` L2-normalised features with an ``nn.Module`` twin.
"""

from . import metrics
from ._validation import input_checks, set_input_checks
from .losses import (
    AlignLoss,
    AsymptoticContrastiveLoss,
    ContrastiveLoss,
    DebiasedContrastiveLoss,
    DecoupledContrastiveLoss,
    HardContrastiveLoss,
    NTXentLoss,
    SigmoidLoss,
    SimpleLoss,
    SupervisedContrastiveLoss,
    UniformLoss,
    align_loss,
    asymptotic_contrastive_loss,
    contrastive_loss,
    debiased_contrastive_loss,
    decoupled_contrastive_loss,
    hard_contrastive_loss,
    nt_xent_loss,
    sigmoid_loss,
    simple_loss,
    supervised_contrastive_loss,
    uniform_loss,
)
from .objective import Objective

__version__ = "0.1.0"

__all__ = [
    "AlignLoss",
    "AsymptoticContrastiveLoss",
    "ContrastiveLoss",
    "DebiasedContrastiveLoss",
    "DecoupledContrastiveLoss",
    "HardContrastiveLoss",
    "NTXentLoss",
    "Objective",
    "SigmoidLoss",
    "SimpleLoss",
    "SupervisedContrastiveLoss",
    "UniformLoss",
    "align_loss",
    "asymptotic_contrastive_loss",
    "contrastive_loss",
    "debiased_contrastive_loss",
    "decoupled_contrastive_loss",
    "hard_contrastive_loss",
    "nt_xent_loss",
    "input_checks",
    "metrics",
    "set_input_checks",
    "sigmoid_loss",
    "simple_loss",
    "supervised_contrastive_loss",
    "uniform_loss",
]
