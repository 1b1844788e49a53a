"""aligniform: alignment, uniformity and contrastive learning on the hypersphere.

The functional API mirrors ``torch.nn.functional``: every loss is a pure
function of ``(N, d)`` L2-normalised features with an ``nn.Module`` twin.
Every name :mod:`aligniform.losses` exports is exported here too, so a new
loss needs no edit of this file.
"""

from . import losses, metrics
from ._validation import input_checks, set_input_checks
from .losses import *  # noqa: F403 - the losses' own __all__ is the list
from .objective import Objective

__version__ = "0.1.0"

__all__ = [*losses.__all__, "Objective", "input_checks", "metrics", "set_input_checks"]
