"""Representation metrics: alignment, uniformity, tolerance, mean classifier, effective rank.

Every metric accepts numpy arrays or torch tensors, returns a Python float, and
works through the rows in chunks, so a (1,000,000 × 128) matrix never needs an
O(N²) buffer. Accumulation happens in float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ._validation import (
    ArrayLike,
    check_feature_pair,
    check_feature_structure,
    check_feature_values,
    check_features,
    check_labels,
    check_positive,
    check_positive_int,
    check_same_shape,
)
from .losses.engine import pair_count, pairwise_logsumexp

CHUNK_ROWS = 65536


def _float(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype == torch.float64 else x.float()


def alignment(x: ArrayLike, y: ArrayLike, alpha: float = 2.0, normalize: bool = False) -> float:
    """Alignment metric: mean ||x_i - y_i||^alpha over held-out positive pairs (lower is better).

    Examples:
        >>> import numpy as np
        >>> from aligniform.metrics import alignment
        >>> z = np.eye(3)
        >>> round(alignment(z, z[[1, 2, 0]]), 6)  # every pair sits sqrt(2) apart: ||x - y||² = 2
        2.0
    """
    alpha = check_positive(alpha, "alpha")
    x, y = check_feature_pair(x, y, normalize=normalize)
    total = 0.0
    with torch.no_grad():
        for a, b in zip(x.split(CHUNK_ROWS), y.split(CHUNK_ROWS)):
            distance = torch.linalg.vector_norm(_float(a) - _float(b), dim=1).double()
            total += float(distance.pow(alpha).sum())
    return total / x.shape[0]


def uniformity(
    x: ArrayLike, t: float = 2.0, max_pairs: int | None = None, seed: int = 0, normalize: bool = False
) -> float:
    """Uniformity metric: log mean exp(-t ||x_i - x_j||²) over distinct pairs (lower is better).

    Exact by default (a tiled log-sum-exp over all N(N-1)/2 pairs, O(N·block)
    memory, O(N²d) time). With ``max_pairs`` it samples that many pairs i != j
    uniformly with replacement (seeded): the pair mean of exp(-t d²) is then
    unbiased and its log a consistent estimate (bias O(1/max_pairs)).
    Wang & Liu (2021) report ``-uniformity(x, t=2)`` ("higher is more uniform").

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> from aligniform.metrics import uniformity
        >>> z = F.normalize(torch.randn(2000, 32), dim=1)
        >>> exact, sampled = uniformity(z), uniformity(z, max_pairs=200_000)
        >>> abs(exact - sampled) < 0.02  # about -3.75, and the estimate within a few thousandths
        True
    """
    t = check_positive(t, "t")
    if max_pairs is not None:
        max_pairs = check_positive_int(max_pairs, "max_pairs")
    x = check_features(x, "x", normalize=normalize, min_rows=2)
    x = _float(x)
    n = x.shape[0]
    with torch.no_grad():
        if max_pairs is None or max_pairs >= pair_count(n, 0, True):
            lse = pairwise_logsumexp(x, t).double()
            return float(lse) - math.log(pair_count(n, 0, True))
        generator = torch.Generator().manual_seed(seed)
        partial = []
        for start in range(0, max_pairs, CHUNK_ROWS):
            count = min(CHUNK_ROWS, max_pairs - start)
            first = torch.randint(n, (count,), generator=generator)
            # A uniform pair with j != i: offset the second index by 1..n-1.
            second = (first + torch.randint(1, n, (count,), generator=generator)) % n
            a, b = x[first.to(x.device)], x[second.to(x.device)]
            partial.append(torch.logsumexp(-t * (a - b).pow(2).sum(1).double(), 0))
        return float(torch.logsumexp(torch.stack(partial), 0)) - math.log(max_pairs)


def tolerance(z: ArrayLike, labels: ArrayLike, normalize: bool = False) -> float:
    """Tolerance of Wang & Liu (2021): mean similarity z_iᵀz_j over same-class pairs i != j.

    Wang & Liu write T = E[f(x)ᵀf(y) · 1{l(x) = l(y)}]; the values they report
    (up to 0.37 on 10-class CIFAR-10, which the joint expectation could not
    exceed by much past P(same class) ≈ 0.1) are the mean over same-class pairs,
    i.e. the expectation conditioned on l(x) = l(y). That is what this returns,
    pooling all distinct same-class pairs. It runs in O(N·d): per class,
    Σ_{i≠j} z_iᵀz_j = ||Σ_i z_i||² - Σ_i ||z_i||². Higher means same-class
    samples sit closer together. Labels < 0 (unlabelled) are ignored.

    Examples:
        >>> import numpy as np
        >>> from aligniform.metrics import tolerance
        >>> tolerance(np.array([[1.0, 0], [1, 0], [0, 1], [0, 1]]), [0, 0, 1, 1])
        1.0
    """
    z = check_features(z, "z", normalize=normalize, min_rows=2)
    labels = check_labels(labels, z.shape[0]).to(z.device)
    keep = labels >= 0
    z, labels = z[keep], labels[keep]
    classes, class_index = torch.unique(labels, return_inverse=True)
    with torch.no_grad():
        class_sums = torch.zeros(len(classes), z.shape[1], dtype=torch.float64, device=z.device)
        class_sums.index_add_(0, class_index, z.double())
        counts = torch.bincount(class_index, minlength=len(classes)).double()
        squared_norms = torch.zeros(len(classes), dtype=torch.float64, device=z.device)
        squared_norms.index_add_(0, class_index, z.double().pow(2).sum(1))
        pair_sums = class_sums.pow(2).sum(1) - squared_norms
        pairs = counts * (counts - 1)
    if float(pairs.sum()) == 0:
        raise ValueError("labels must contain at least one class with two or more samples to measure tolerance")
    return float(pair_sums.sum() / pairs.sum())


def class_means(z: ArrayLike, labels: ArrayLike, normalize: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean feature of each class (Arora et al.'s μ_c); returns (classes, means)."""
    z = check_features(z, "train_z", normalize=normalize, require_unit_norm=False)
    labels = check_labels(labels, z.shape[0], "train_labels").to(z.device)
    keep = labels >= 0
    if not bool(keep.any()):
        raise ValueError("train_labels has no labelled sample (labels < 0 mean unlabelled): class means need labels")
    classes, inverse = torch.unique(labels[keep], return_inverse=True)
    sums = torch.zeros(len(classes), z.shape[1], dtype=torch.float64, device=z.device)
    sums.index_add_(0, inverse, z[keep].double())
    return classes, sums / torch.bincount(inverse, minlength=len(classes)).double()[:, None]


def mean_classifier_accuracy(
    train_z: ArrayLike, train_labels: ArrayLike, test_z: ArrayLike, test_labels: ArrayLike, normalize: bool = False
) -> float:
    """Accuracy of Arora et al.'s mean classifier: predict argmax_c μ_cᵀ f(x).

    μ_c is the mean training feature of class c (no normalisation of μ_c, as in
    the paper). Needs only class means: a cheap, label-light evaluation.
    Features need not be unit-norm; ``normalize`` L2-normalises them first.

    Examples:
        >>> import numpy as np
        >>> from aligniform.metrics import mean_classifier_accuracy
        >>> train = np.array([[1.0, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
        >>> mean_classifier_accuracy(train, [0, 0, 1, 1], np.array([[1.0, 0.2]]), [0])
        1.0
    """
    classes, means = class_means(train_z, train_labels, normalize)
    test_z = check_features(test_z, "test_z", normalize=normalize, require_unit_norm=False)
    test_labels = check_labels(test_labels, test_z.shape[0], "test_labels").to(test_z.device)
    if test_z.shape[1] != means.shape[1]:
        raise ValueError(
            f"test_z must have the same feature width as train_z ({means.shape[1]}), got {test_z.shape[1]}"
        )
    correct = 0
    with torch.no_grad():
        for chunk, chunk_labels in zip(test_z.split(CHUNK_ROWS), test_labels.split(CHUNK_ROWS)):
            predicted = classes[(chunk.double() @ means.T).argmax(1)]
            correct += int((predicted == chunk_labels).sum())
    return correct / test_z.shape[0]


@torch.no_grad()
def mean_classifier_evaluation(
    train_z: torch.Tensor,
    train_labels: torch.Tensor,
    test_z: torch.Tensor,
    test_labels: torch.Tensor,
    class_probs: torch.Tensor,
) -> dict[str, float]:
    """Accuracy and supervised losses of the mean classifier μ_c = mean f(x) over class c's training samples.

    The classes are 0 … K − 1 with prior ρ = ``class_probs`` (K entries); every
    class needs a training sample. Returns a dict of floats:

    * ``accuracy``: argmax_c μ_cᵀf(x) on the test set (as :func:`mean_classifier_accuracy`);
    * ``multiclass_loss``: cross-entropy of the logits μ_cᵀf(x), the K-way
      logistic loss log(1 + Σ_{c'≠c} exp(μ_{c'}ᵀf − μ_cᵀf));
    * ``binary_loss``: Arora et al.'s (2019) L_sup^μ: ℓ(f(x)ᵀ(μ_c − μ_{c'})) with
      ℓ(v) = log(1 + e^{−v}), averaged over pairs of distinct classes (c, c')
      drawn from ρ. With test samples drawn from ρ, sample x of class c gets the
      weight Σ_{c'≠c} ρ_{c'} ℓ(...) / (1 − τ), τ = Σ_c ρ_c².

    Examples:
        >>> import torch
        >>> z, labels = torch.eye(2), torch.tensor([0, 1])
        >>> mean_classifier_evaluation(z, labels, z, labels, torch.tensor([0.5, 0.5]))["accuracy"]
        1.0
    """
    classes = torch.arange(len(class_probs))
    means = torch.stack([train_z[train_labels == c].mean(0) for c in classes])
    logits = test_z @ means.T
    own = logits.gather(1, test_labels[:, None])
    pairwise = F.softplus(-(own - logits))  # ℓ(v_c − v_c') for every c'; the c' = c entry is ℓ(0)
    weights = class_probs.to(logits.dtype)[None, :].expand_as(logits).clone()
    weights.scatter_(1, test_labels[:, None], 0.0)  # only c' ≠ c
    collision = float((class_probs**2).sum())
    return {
        "accuracy": float((logits.argmax(1) == test_labels).double().mean()),
        "multiclass_loss": float(F.cross_entropy(logits, test_labels)),
        "binary_loss": float((pairwise * weights).sum(1).mean() / (1 - collision)),
    }


def effective_rank(z: ArrayLike) -> float:
    """Effective rank (Roy & Vetterli; RankMe): exp of the entropy of the normalised singular values.

    With singular values σ_k of the (N, d) matrix and p_k = σ_k / Σσ, returns
    exp(-Σ p_k log p_k): between 1 (collapse to a line) and min(N, d). The
    singular values come from the d × d Gram matrix, accumulated in chunks.

    Examples:
        >>> import numpy as np
        >>> from aligniform.metrics import effective_rank
        >>> round(effective_rank(np.eye(4)), 6)
        4.0
    """
    z = check_features(z, "z", require_unit_norm=False)
    with torch.no_grad():
        gram = torch.zeros(z.shape[1], z.shape[1], dtype=torch.float64, device=z.device)
        for chunk in z.split(CHUNK_ROWS):
            chunk = chunk.double()
            gram += chunk.T @ chunk
        singular = torch.linalg.eigvalsh(gram).clamp_min(0).sqrt()
    total = float(singular.sum())
    if total == 0:
        raise ValueError("z is all zeros: its effective rank is undefined")
    p = singular / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def modality_gap(x: ArrayLike, y: ArrayLike, normalize: bool = False) -> float:
    """Modality gap of Liang et al. (NeurIPS 2022): ||mean_i x_i - mean_j y_j||, the distance between the centres.

    For pairs from two encoders (image and text towers, a query and a document
    encoder), the two sides' embeddings often occupy two separate cones of the
    sphere; this is the Euclidean distance between their mean embeddings
    (0 when both sides share one distribution, up to 2 for two antipodal
    points). For two augmented views through one encoder it is near 0, so it
    is informative for any pairs. ``x`` and ``y`` need the same width, not the
    same number of rows. Sums accumulate in float64, chunk by chunk.

    Examples:
        >>> import numpy as np
        >>> from aligniform.metrics import modality_gap
        >>> modality_gap(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[-1.0, 0.0], [0.0, -1.0]]))
        1.4142135623730951
    """
    x = check_features(x, "x", normalize=normalize)
    y = check_features(y, "y", normalize=normalize)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same feature width, got {x.shape[1]} and {y.shape[1]}")
    with torch.no_grad():
        centres = [
            torch.stack([chunk.double().sum(0) for chunk in z.split(CHUNK_ROWS)]).sum(0) / z.shape[0] for z in (x, y)
        ]
        return float(torch.linalg.vector_norm(centres[0] - centres[1].to(centres[0].device)))


RETRIEVAL_BLOCK = 1 << 24
"""Similarity entries computed at once by :func:`retrieval_recall` (rows per block: this divided by N)."""


def retrieval_recall(
    queries: ArrayLike,
    keys: ArrayLike,
    k: int = 1,
    normalize: bool = False,
    max_queries: int | None = None,
    seed: int = 0,
) -> float:
    """Recall@k of retrieving each query's own partner among all keys by cosine similarity.

    Row i of ``keys`` is the one right answer for row i of ``queries`` (a
    positive pair); every other key is a distractor. Returns the fraction of
    queries whose partner ranks among the ``k`` most similar keys. Ties are
    broken uniformly at random, in expectation: a query whose partner has
    ``g`` strictly more similar keys and ``e`` equally similar ones counts
    ``clip((k - g) / (e + 1), 0, 1)``, so collapsed embeddings (all keys
    equal) score k/N rather than 1. Swap the arguments for the other
    direction (text -> image instead of image -> text).

    Exact over all N queries against all N keys (O(N²d) time, memory of
    :data:`RETRIEVAL_BLOCK` similarities); with ``max_queries`` it scores
    that many queries drawn without replacement (seeded), still against all
    keys. :func:`retrieval_recalls` gives several k from one pass.

    Examples:
        >>> import numpy as np
        >>> from aligniform.metrics import retrieval_recall
        >>> z = np.eye(3)
        >>> retrieval_recall(z, z), retrieval_recall(z, z[[1, 2, 0]]), retrieval_recall(z, z[[1, 2, 0]], k=2)
        (1.0, 0.0, 0.5)
    """
    return retrieval_recalls(queries, keys, (k,), normalize, max_queries, seed)[k]


def retrieval_recalls(
    queries: ArrayLike,
    keys: ArrayLike,
    ks: Sequence[int] = (1, 5),
    normalize: bool = False,
    max_queries: int | None = None,
    seed: int = 0,
) -> dict[int, float]:
    """:func:`retrieval_recall` for every k in ``ks`` from one pass over the similarities: ``{k: recall@k}``.

    Examples:
        >>> import numpy as np
        >>> retrieval_recalls(np.eye(3), np.eye(3)[[1, 2, 0]], ks=(1, 2, 3))
        {1: 0.0, 2: 0.5, 3: 1.0}
    """
    # Why not torchmetrics' RetrievalRecall: it wants a dense (queries x keys) score matrix with targets and
    # an index per query, O(N^2) memory; here the similarities are walked block by block (O(N x block)), and the
    # core install does not depend on torchmetrics. The value is the same (one relevant key per query).
    ks = [check_positive_int(k, "k") for k in ks]
    if not ks:
        raise ValueError("ks must name at least one k")
    queries = check_feature_structure(queries, "queries")
    keys = check_feature_structure(keys, "keys")
    check_same_shape(queries, keys, ("queries", "keys"))
    queries = _float(check_feature_values(queries, "queries", normalize))
    keys = _float(check_feature_values(keys, "keys", normalize))
    n = queries.shape[0]
    rows = torch.arange(n)
    if max_queries is not None and check_positive_int(max_queries, "max_queries") < n:
        rows = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_queries].sort().values
    rows = rows.to(queries.device)
    k_column = torch.tensor(ks, dtype=torch.float64, device=queries.device)[None, :]
    totals = torch.zeros(len(ks), dtype=torch.float64, device=queries.device)
    with torch.no_grad():
        for block in rows.split(max(1, RETRIEVAL_BLOCK // n)):
            similarity = queries[block] @ keys.T
            # The partner's similarity is read from the same product, so its ties are exact.
            own = similarity.gather(1, block[:, None])
            greater = (similarity > own).sum(1).double()[:, None]
            ties = ((similarity == own).sum(1) - 1).double()[:, None]
            totals += ((k_column - greater) / (ties + 1)).clamp(0, 1).sum(0)
    return {k: float(total) / rows.numel() for k, total in zip(ks, totals)}


__all__ = [
    "alignment",
    "uniformity",
    "tolerance",
    "mean_classifier_accuracy",
    "mean_classifier_evaluation",
    "effective_rank",
    "class_means",
    "modality_gap",
    "retrieval_recall",
    "retrieval_recalls",
]
