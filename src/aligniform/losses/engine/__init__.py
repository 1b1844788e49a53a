"""The tiling engine behind every pairwise loss and metric: exact reductions over (rows × columns) pair logits.

Every pairwise quantity here is a reduction over logits ``l_ij = r_iᵀc_j`` between anchor rows and candidate
columns, computed tile by tile (one GEMM each, about ``BLOCK_ELEMENTS`` elements, :func:`tile_shape`) with a custom
backward that recomputes each tile, so memory is O(N × block), never O(N²):

* :func:`tiled_logsumexp`: row and/or column log-sum-exps over all pairs, all but a diagonal, or one triangle
  (the contrastive family, NT-Xent, uniformity); :func:`pairwise_logsumexp` is uniformity's pair sum
  (with :func:`as_rows`/:func:`as_columns`, its augmentation) and :func:`pair_count` its number of pairs;
* :func:`hardest_logsumexp`: over each row's hardest ``ceil(alpha·M)`` candidates (Wang & Liu), exact
  thresholds by tiled counting (:mod:`.select`); :func:`hardest_logsumexp_both`: both directions of a square
  matrix from one GEMM;
* :func:`tiled_softplus_sum`: Σ softplus of signed logits (SigLIP);
* :func:`balanced_pairs_logsumexp`: one set's unordered pairs split evenly over the ranks of a shard;
* :func:`combine_logsumexp`: the elementwise log-sum-exp of partial log-sum-exps (``-inf`` safe).

Public: :mod:`aligniform.metrics` and the losses use these names only.
"""

from .balanced import balanced_pairs_logsumexp, combine_logsumexp
from .hardest import PAIRED_ELEMENTS, hardest_logsumexp, hardest_logsumexp_both, hardest_negatives_mask, kept_negatives
from .logsumexp import BLOCK_COLUMNS, BLOCK_ELEMENTS, Mask, tile_shape, tiled_logsumexp
from .softplus import tiled_softplus_sum
from .uniformity import as_columns, as_rows, pair_count, pairwise_logsumexp

__all__ = [
    "PAIRED_ELEMENTS",
    "BLOCK_COLUMNS",
    "BLOCK_ELEMENTS",
    "Mask",
    "as_columns",
    "as_rows",
    "balanced_pairs_logsumexp",
    "combine_logsumexp",
    "hardest_logsumexp",
    "hardest_logsumexp_both",
    "hardest_negatives_mask",
    "kept_negatives",
    "pair_count",
    "pairwise_logsumexp",
    "tile_shape",
    "tiled_logsumexp",
    "tiled_softplus_sum",
]
