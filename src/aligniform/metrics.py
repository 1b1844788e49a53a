"""Representation metrics: alignment, uniformity, tolerance, mean classifier, effective rank.

Every metric accepts numpy arrays or torch tensors, returns a Python float, and
works through the rows in chunks, so a (1,000,000 × 128) matrix never needs an
O(N²) buffer. Accumulation happens in float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._validation import ArrayLike, check_feature_pair, check_features, check_labels, check_positive
from .losses._pairwise import pair_count, pairwise_logsumexp

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
    x = check_features(x, "x", normalize=normalize, min_rows=2)
    x = _float(x)
    n = x.shape[0]
    with torch.no_grad():
        if max_pairs is None or max_pairs >= pair_count(n, 0, True):
            lse = pairwise_logsumexp(x, t).double()
            return float(lse) - math.log(pair_count(n, 0, True))
        max_pairs = int(check_positive(max_pairs, "max_pairs"))
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


__all__ = [
    "alignment",
    "uniformity",
    "tolerance",
    "mean_classifier_accuracy",
    "mean_classifier_evaluation",
    "effective_rank",
    "class_means",
]
