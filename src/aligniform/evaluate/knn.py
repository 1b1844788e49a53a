"""k-nearest-neighbour classification by cosine similarity (Wang & Isola report 5-NN)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validation import check_feature_structure, check_feature_values, check_positive_int
from ._checks import Features, Labels, check_labelled_features, check_same_width, drop_unlabelled


def knn_predict(
    train_z: Features, train_labels: Labels, test_z: Features, k: int = 5, chunk_size: int = 1024
) -> torch.Tensor:
    """Predict labels of ``test_z`` by a majority vote of its ``k`` most cosine-similar training rows.

    Rows are L2-normalised internally, so any features (hidden layers, raw
    pixels) can be passed. A tie in the vote goes to the tied class whose
    neighbours have the largest summed similarity; an exact tie of those sums
    goes to the smallest label. Test rows are processed ``chunk_size`` at a
    time, so memory is O(chunk_size × N_train); everything runs on the
    device of ``train_z`` (a GPU included).

    Args:
        train_z: ``(N, d)`` training features (tensor or numpy array).
        train_labels: ``(N,)`` integer labels; rows labelled < 0 (unlabelled) are ignored.
        test_z: ``(M, d)`` features to classify.
        k: number of neighbours, at most the number of labelled training rows.
        chunk_size: test rows per similarity block; it does not change the result.

    Returns:
        ``(M,)`` int64 predicted labels, on the device of ``train_z``.

    Raises:
        ValueError: on malformed features or labels, mismatched widths, or
            ``k`` outside ``1..N``.

    Examples:
        >>> import torch
        >>> train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> knn_predict(train, torch.tensor([0, 0, 1, 1]), torch.tensor([[0.2, 1.0]]), k=3).tolist()
        [1]
    """
    train_z, train_labels = check_labelled_features(train_z, train_labels, "train_z", "train_labels")
    train_z, train_labels = drop_unlabelled(train_z, train_labels, "train_labels")
    test_z = _check_test_features(test_z, train_z)
    k = check_positive_int(k, "k")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    if k > train_z.shape[0]:
        raise ValueError(f"k ({k}) must not exceed the number of labelled training samples ({train_z.shape[0]})")
    classes, train_class = torch.unique(train_labels, return_inverse=True)
    train_unit = F.normalize(_as_float(train_z), dim=1)
    predictions = [
        classes[_vote(F.normalize(chunk.to(train_unit.dtype), dim=1) @ train_unit.T, train_class, len(classes), k)]
        for chunk in test_z.split(chunk_size)
    ]
    if not predictions:
        return torch.empty(0, dtype=torch.int64, device=train_z.device)
    return torch.cat(predictions)


def knn_accuracy(
    train_z: Features,
    train_labels: Labels,
    test_z: Features,
    test_labels: Labels,
    k: int = 5,
    chunk_size: int = 1024,
) -> float:
    """Accuracy of the cosine k-NN classifier of :func:`knn_predict` (a fraction in [0, 1]).

    Test rows labelled < 0 (unlabelled) are left out of the accuracy.

    Examples:
        >>> import numpy as np
        >>> train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> knn_accuracy(train, [0, 0, 1, 1], np.array([[1.0, 0.2], [0.0, 1.0]]), [0, 1], k=1)
        1.0
    """
    test_z, test_labels = check_labelled_features(test_z, test_labels, "test_z", "test_labels")
    test_z, test_labels = drop_unlabelled(test_z, test_labels, "test_labels")
    predicted = knn_predict(train_z, train_labels, test_z, k, chunk_size)
    return float((predicted == test_labels.to(predicted.device)).double().mean())


def _vote(similarity: torch.Tensor, train_class: torch.Tensor, num_classes: int, k: int) -> torch.Tensor:
    """Class index (into the sorted training classes) voted by each row's k nearest neighbours."""
    top_similarity, top_index = similarity.topk(k, dim=1)
    neighbour_class = train_class[top_index]
    votes = torch.zeros(similarity.shape[0], num_classes, dtype=torch.int64, device=similarity.device)
    votes.scatter_add_(1, neighbour_class, torch.ones_like(neighbour_class))
    summed_similarity = torch.zeros(similarity.shape[0], num_classes, dtype=similarity.dtype, device=similarity.device)
    summed_similarity.scatter_add_(1, neighbour_class, top_similarity)
    # Only classes with the most votes compete; among them the larger summed similarity wins.
    most_votes = votes == votes.max(dim=1, keepdim=True).values
    score = summed_similarity.masked_fill(~most_votes, float("-inf"))
    return score.argmax(dim=1)  # argmax returns the first maximum: smallest label on exact ties


def _check_test_features(test_z: Features, train_z: torch.Tensor) -> torch.Tensor:
    test_z = check_feature_structure(test_z, "test_z", min_rows=0)
    test_z = check_feature_values(test_z, "test_z", require_unit_norm=False)
    check_same_width(train_z, test_z)
    return test_z.to(train_z.device)


def _as_float(z: torch.Tensor) -> torch.Tensor:
    # float16/bfloat16 similarities are too coarse to rank neighbours reliably.
    return z if z.dtype in (torch.float32, torch.float64) else z.float()
