"""The embeddings to analyse: :class:`EmbeddingSet` and the structural checks it runs on creation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._validation import check_labels

Array = np.ndarray | torch.Tensor
"""A numpy array or a torch tensor: every input of the analysis accepts either."""

__all__ = ["Array", "EmbeddingSet", "check_embedding_matrix"]


@dataclass
class EmbeddingSet:
    """Embeddings to analyse: rows ``x``, positive partners ``y`` (row i pairs with x[i]), class ``labels``.

    Arrays may be numpy arrays or torch tensors; they are checked on creation
    (shapes, dtypes) so every later error is about values, not structure.

    Attributes:
        x: ``(N, d)`` floating-point embeddings, N >= 2.
        y: ``(N, d)`` positive partners of ``x`` (another view of the same
            sample), or ``None``: alignment is then skipped.
        labels: ``(N,)`` integer class labels (``-1`` = unlabelled), or
            ``None``: tolerance and the mean classifier are then skipped.
        source: where the embeddings came from, shown in the analysis.

    Examples:
        >>> import numpy as np
        >>> emb = EmbeddingSet(np.eye(3), np.eye(3), np.array([0, 1, 1]), "identity")
        >>> emb.n, emb.d
        (3, 3)
    """

    x: Array
    y: Array | None = None
    labels: Array | None = None
    source: str = "embeddings"

    def __post_init__(self) -> None:
        check_embedding_matrix(self.x, "x", self.source)
        if self.y is not None:
            check_embedding_matrix(self.y, "y", self.source)
            if tuple(self.y.shape) != tuple(self.x.shape):
                raise ValueError(
                    f"y must have the same shape as x (one positive partner per row of x) in {self.source}, "
                    f"got x {tuple(self.x.shape)} and y {tuple(self.y.shape)}"
                )
        if self.labels is not None:
            kind = getattr(getattr(self.labels, "dtype", None), "kind", None)
            if kind in ("U", "S", "O"):  # class names rather than class numbers
                raise ValueError(
                    f"labels must be integer class labels (-1 = unlabelled), got an array of dtype "
                    f"{self.labels.dtype} (in {self.source}); map class names to integers first, e.g. "
                    f"numpy.unique(labels, return_inverse=True)[1]"
                )
            try:
                check_labels(self.labels, self.n)
            except ValueError as error:
                raise ValueError(f"{error} (in {self.source})") from None

    @property
    def n(self) -> int:
        """Number of rows of ``x``."""
        return int(self.x.shape[0])

    @property
    def d(self) -> int:
        """Embedding dimension."""
        return int(self.x.shape[1])


def check_embedding_matrix(value: object, name: str, source: str = "embeddings") -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is an ``(N >= 2, d >= 1)`` floating-point array.

    Examples:
        >>> import numpy as np
        >>> check_embedding_matrix(np.eye(2), "x")
        >>> check_embedding_matrix(np.ones(3), "x")
        Traceback (most recent call last):
        ...
        ValueError: x must be a 2-D (rows, dimensions) array with one embedding per row, got shape (3,) (in embeddings)
    """
    if not isinstance(value, (np.ndarray, torch.Tensor)):
        raise ValueError(f"{name} must be a numpy array or torch tensor, got {type(value).__name__} (in {source})")
    if value.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (rows, dimensions) array with one embedding per row, "
            f"got shape {tuple(value.shape)} (in {source})"
        )
    floating = value.is_floating_point() if isinstance(value, torch.Tensor) else np.issubdtype(value.dtype, np.floating)
    if not floating:
        raise ValueError(f"{name} must hold floating-point embeddings, got dtype {value.dtype} (in {source})")
    if value.shape[0] < 2 or value.shape[1] < 1:
        raise ValueError(
            f"{name} needs at least 2 rows and 1 column (uniformity compares pairs of rows), "
            f"got shape {tuple(value.shape)} (in {source})"
        )
