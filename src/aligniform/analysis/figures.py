"""The papers' pictures of an :class:`EmbeddingSet`, drawn by :mod:`aligniform.plots` (``analyze --figures``)."""

from __future__ import annotations

from pathlib import Path

import torch.nn.functional as F

from .._validation import as_tensor
from .embeddings import Array, EmbeddingSet

__all__ = ["analysis_figures", "planned_figures"]


def planned_figures(embeddings: EmbeddingSet, folder: Path) -> list[str]:
    """The PNG paths :func:`analysis_figures` writes for these embeddings, known before drawing them.

    Examples:
        >>> import numpy as np
        >>> planned_figures(EmbeddingSet(np.eye(3)), Path("figs"))
        []
        >>> planned_figures(EmbeddingSet(np.eye(2), np.eye(2)), Path("figs"))
        ['figs/alignment_histogram.png', 'figs/hypersphere.png']
    """
    names = ["alignment_histogram"] if embeddings.y is not None else []
    names += ["hypersphere"] if embeddings.d == 2 else []
    return [str(Path(folder) / f"{name}.png") for name in names]


def analysis_figures(embeddings: EmbeddingSet, folder: Path, normalize: bool) -> list[str]:
    """The paper's pictures of these embeddings: positive-pair distances; the circle when d = 2.

    Writes ``alignment_histogram.png``/``.svg`` when ``embeddings.y`` is given
    and ``hypersphere.png``/``.svg`` when the rows are 2-d.

    Args:
        embeddings: the embeddings to draw.
        folder: where the figures go (created if missing).
        normalize: L2-normalise the rows first, as ``analyze --normalize`` does.

    Returns:
        The paths of the PNG files written.

    Examples:
        >>> import numpy as np, tempfile
        >>> from pathlib import Path
        >>> circle = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
        >>> written = analysis_figures(EmbeddingSet(circle, circle[[1, 2, 3, 0]]), Path(tempfile.mkdtemp()), False)
        >>> [Path(path).name for path in written]
        ['alignment_histogram.png', 'hypersphere.png']
    """
    # Imported here: matplotlib is needed only when figures are asked for.
    from ..plots import plot_alignment_histogram, plot_hypersphere

    def prepare(values: Array) -> Array:
        return F.normalize(as_tensor(values, "x").double(), dim=1) if normalize else values

    folder = Path(folder)
    x = prepare(embeddings.x)
    if embeddings.y is not None:
        plot_alignment_histogram(x, prepare(embeddings.y), out=folder / "alignment_histogram")
    if embeddings.d == 2:
        plot_hypersphere(x, labels=embeddings.labels, out=folder / "hypersphere")
    return planned_figures(embeddings, folder)
