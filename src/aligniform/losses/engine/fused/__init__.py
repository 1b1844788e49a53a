"""Fused one-tile forms: a small batch's whole loss in one autograd node, bitwise equal to the tiled path.

At N = 256-1024 the whole logit matrix is one tile of the engine, and a loss step is three GEMMs plus a few dozen
small operations (the loss's own divisions, sums, concatenations and means, each an autograd node of 10-50 µs).
Those nodes, not the arithmetic, made the tiled forms slower than the plain ``F.cross_entropy`` form there
(docs/benchmarks.md). The Functions here do the same floating-point operations, in the same order, as the loss's
tiled path does at that size (its one-tile forward, and the backward autograd would run through its graph), so
values and gradients are bitwise those of the tiled path (``tests/losses/test_fused.py`` checks this), but as one
graph node whose backward is written out.

A loss dispatches here only when its whole matrix is one tile (:func:`one_tile`), the unshifted exp is safe (the
engine's own test), and no shard or queue is involved; everything else takes the tiled path unchanged.
"""

from .common import one_tile
from .infonce import FusedInfoNCE, fused_infonce
from .pairs import FusedSimple, fused_simple
from .softplus import FusedSigmoid, fused_sigmoid
from .uniformity import FusedUniformity, fused_uniformity
from .views import (
    FusedDebiased,
    FusedDecoupled,
    FusedNTXent,
    FusedSupCon,
    fused_debiased,
    fused_decoupled,
    fused_nt_xent,
    fused_supcon,
)

__all__ = [
    "FusedDebiased",
    "FusedDecoupled",
    "FusedInfoNCE",
    "FusedNTXent",
    "FusedSigmoid",
    "FusedSimple",
    "FusedSupCon",
    "FusedUniformity",
    "fused_debiased",
    "fused_decoupled",
    "fused_infonce",
    "fused_nt_xent",
    "fused_sigmoid",
    "fused_simple",
    "fused_supcon",
    "fused_uniformity",
    "one_tile",
]
