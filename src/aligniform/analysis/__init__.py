"""Analyse any set of embeddings on the hypersphere: the backend of ``aligniform analyze``.

Embeddings come from one of four sources (:func:`load_embeddings`, :mod:`.sources`,
picks the one given), each turned into an
:class:`EmbeddingSet` (rows ``x``, their positive partners ``y``, optional
class ``labels``; :mod:`.embeddings`):

* an ``.npz`` file or a folder of ``.npy`` files (:func:`load_embedding_file`,
  :mod:`.files`);
* an aligniform checkpoint, whose encoder embeds two augmented views of every
  image of a dataset split (:func:`embeddings_from_checkpoint`, :mod:`.checkpoint`);
* a sentence-transformers model and a TSV of sentence pairs
  (:func:`embeddings_from_sentence_model`, :mod:`.sentences`; needs the optional
  ``sentence-transformers`` package).

:func:`analyze_embeddings` (:mod:`.measure`) then measures them with
:mod:`aligniform.metrics` (alignment and uniformity of Wang & Isola 2020,
tolerance of Wang & Liu 2021, the mean classifier of Arora et al. 2019, the
effective rank of RankMe), :func:`format_analysis` (:mod:`.format`) prints the
result as a table and :func:`~aligniform.analysis.figures.analysis_figures`
draws it (:mod:`.figures`, needs matplotlib). See ``docs/analysis.md``.

Examples:
    >>> import numpy as np
    >>> from aligniform.analysis import EmbeddingSet, analyze_embeddings
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 8))
    >>> y = x + 0.1 * rng.normal(size=(200, 8))
    >>> result = analyze_embeddings(EmbeddingSet(x, y, rng.integers(0, 4, 200), "toy"), normalize=True)
    >>> result["n"], result["d"], 0 < result["alignment"] < 0.1
    (200, 8, True)
"""

from .checkpoint import embeddings_from_checkpoint
from .embeddings import EmbeddingSet
from .files import EMBEDDING_ARRAYS, load_embedding_file
from .format import format_analysis
from .measure import analyze_embeddings
from .sentences import (
    SentenceTransformersMissingError,
    embeddings_from_sentence_model,
    read_pairs_tsv,
    resolve_sentence_model,
)
from .sources import load_embeddings

__all__ = [
    "EMBEDDING_ARRAYS",
    "EmbeddingSet",
    "SentenceTransformersMissingError",
    "analyze_embeddings",
    "embeddings_from_checkpoint",
    "embeddings_from_sentence_model",
    "format_analysis",
    "load_embedding_file",
    "load_embeddings",
    "read_pairs_tsv",
    "resolve_sentence_model",
]
