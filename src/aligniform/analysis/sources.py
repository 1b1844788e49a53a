"""Where the embeddings come from: one call reads a file or embeds pairs with a checkpoint or a sentence model.

The backend of ``aligniform analyze``'s inputs: the command line only parses
its flags and hands them to :func:`load_embeddings`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import OptionError
from .checkpoint import embeddings_from_checkpoint
from .embeddings import EmbeddingSet
from .files import load_embedding_file
from .sentences import embeddings_from_sentence_model

__all__ = ["check_path_kind", "is_embedding_file", "load_embeddings"]


def load_embeddings(
    path: str | Path | None = None,
    *,
    npz: str | Path | None = None,
    npy_dir: str | Path | None = None,
    sentence_model: str | Path | None = None,
    pairs: str | Path | None = None,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    split: str = "test",
    layer: str = "output",
    device: str = "cpu",
) -> EmbeddingSet:
    """The embeddings of exactly one source: a path, an ``.npz``, a folder of ``.npy`` or a sentence model.

    ``path`` is read by what it is: an ``.npz`` or ``.npy`` file, or a folder
    holding ``x.npy``, as :func:`~aligniform.analysis.load_embedding_file`;
    anything else as a checkpoint whose encoder embeds two augmented views of
    every image of ``dataset``'s ``split``
    (:func:`~aligniform.analysis.embeddings_from_checkpoint`, with ``data_dir``,
    ``layer`` and ``device``). ``sentence_model`` embeds the sentence pairs of
    the TSV file ``pairs`` (:func:`~aligniform.analysis.embeddings_from_sentence_model`).

    Raises:
        OptionError: not exactly one source is given, or ``sentence_model`` without ``pairs``.

    Examples:
        >>> import numpy as np, tempfile, os
        >>> file = os.path.join(tempfile.mkdtemp(), "emb.npz")
        >>> np.savez(file, x=np.eye(3), y=np.eye(3))
        >>> load_embeddings(file).n
        3
        >>> load_embeddings(file, npz=file)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        aligniform.errors.OptionError: give exactly one input: `path` (.npz, folder of .npy, checkpoint), ...
    """
    sources = [path, npz, npy_dir, sentence_model]
    if sum(source is not None for source in sources) != 1:
        raise OptionError(
            "give exactly one input: `path` (.npz, folder of .npy, checkpoint), `npz`, `npy_dir` "
            "or `sentence_model` with `pairs`"
        )
    if sentence_model is not None:
        if pairs is None:
            raise OptionError(
                "`sentence_model` needs `pairs`, a .tsv file (two text columns per line: a positive pair)"
            )
        return embeddings_from_sentence_model(sentence_model, pairs)
    if path is not None:
        check_path_kind(Path(path).expanduser())
    if path is not None and is_embedding_file(Path(path)):
        return load_embedding_file(path)
    if path is not None:
        return embeddings_from_checkpoint(path, dataset, data_dir, split, layer, device)
    file = npz if npz is not None else npy_dir
    assert file is not None
    return load_embedding_file(file)


def is_embedding_file(path: Path) -> bool:
    """Whether a path holds arrays (an .npz or .npy, a folder with x.npy) rather than a checkpoint.

    Examples:
        >>> is_embedding_file(Path("emb.npz")), is_embedding_file(Path("run/checkpoint.pt"))
        (True, False)
    """
    return path.suffix in (".npz", ".npy") or (path.is_dir() and (path / "x.npy").is_file())


def check_path_kind(path: Path) -> None:
    """Raise unless ``path`` is a regular file or a folder holding ``x.npy``, naming what it is instead.

    Without this a run folder, a folder of other files or a FIFO would be read as a checkpoint and reported
    as "checkpoint ... does not exist", which sends the user the wrong way (and a FIFO would block).

    Raises:
        OptionError: ``path`` is a run folder, a folder without ``x.npy``, or not a regular file.

    Examples:
        >>> import tempfile
        >>> check_path_kind(Path(tempfile.mkdtemp()))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        aligniform.errors.OptionError: `path` ... is a folder without x.npy (found: nothing); give a folder ...
    """
    if path.is_dir():
        if (path / "x.npy").is_file():
            return
        checkpoints = [name for name in ("checkpoint.pt", "best.pt") if (path / name).is_file()]
        if checkpoints:
            raise OptionError(
                f"`path` {path} is a run folder, not embeddings; give its checkpoint ({path / checkpoints[0]}) "
                "to embed the test set with the run's encoder"
            )
        found = ", ".join(sorted(child.name for child in path.iterdir())[:5]) or "nothing"
        raise OptionError(
            f"`path` {path} is a folder without x.npy (found: {found}); give a folder holding x.npy (and "
            "optionally y.npy, labels.npy), an .npz file or a checkpoint file"
        )
    if path.exists() and not path.is_file():
        raise OptionError(
            f"`path` {path} is not a regular file (a FIFO, socket or device); give an .npz, a folder of .npy "
            "files or a checkpoint file"
        )
