"""The inputs of ``aligniform compare``: what each one is, checked before any work, then loaded.

An input is read by what it is (:func:`input_kind`): an embedding file (``.npz``,
``.npy``, a folder holding ``x.npy``), a sentence-transformers model folder or
installed model package (embedding the ``pairs`` file), a run folder (its
``checkpoint.pt``) or a checkpoint file. A sentence model's pairs file may carry
a score column: with ``min_score``, alignment and retrieval use only the pairs
scored at least ``min_score`` and the one-sided metrics every sentence of the
file (SimCSE's protocol, Gao et al. 2021).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OptionError
from .compare import CompareSet
from .embeddings import EmbeddingSet
from .sources import is_embedding_file

__all__ = [
    "CompareInput",
    "ScoredPairs",
    "check_compare_inputs",
    "input_kind",
    "load_compare_input",
    "read_scored_pairs",
]

# Files that mark a folder as a sentence-transformers model.
_SENTENCE_MODEL_FILES = ("modules.json", "config_sentence_transformers.json")


@dataclass(frozen=True)
class CompareInput:
    """One checked input: its display ``name``, what was given (``spec``), its ``kind`` and the ``path`` to load."""

    name: str
    spec: str
    kind: str  # "file", "checkpoint" or "sentence"
    path: str


@dataclass(frozen=True)
class ScoredPairs:
    """A pairs file: the two texts of every line and, when the file has a third column, its score."""

    first: list[str]
    second: list[str]
    scores: np.ndarray | None


def input_kind(spec: str | Path) -> tuple[str, str] | None:
    """``(kind, path to load)`` of an input, or ``None`` when it is none of the kinds.

    Examples:
        >>> import numpy as np, tempfile, os
        >>> file = os.path.join(tempfile.mkdtemp(), "emb.npz")
        >>> np.savez(file, x=np.eye(3))
        >>> input_kind(file)[0], input_kind("no/such/thing")
        ('file', None)
    """
    path = Path(spec).expanduser()
    if is_embedding_file(path):
        return ("file", str(path)) if path.exists() else None
    if path.is_dir():
        if any((path / name).is_file() for name in _SENTENCE_MODEL_FILES):
            return "sentence", str(path)
        for name in ("checkpoint.pt", "best.pt"):
            if (path / name).is_file():
                return "checkpoint", str(path / name)
        return None
    if path.is_file():
        return "checkpoint", str(path)
    from .sentences import resolve_sentence_model  # an installed package shipping a model, by name

    try:
        return "sentence", str(resolve_sentence_model(str(spec)))
    except ValueError:
        return None


def check_compare_inputs(
    specs: list[str | Path], pairs: str | Path | None = None, min_score: float | None = None
) -> tuple[list[CompareInput], ScoredPairs | None]:
    """Check every input (and the pairs file) before any work; give each a unique display name.

    Raises:
        OptionError: no inputs, an input that is none of the kinds (naming it), a sentence model without
            ``pairs``, ``min_score`` without a sentence model or a scored pairs file, or a bad pairs file.

    Examples:
        >>> check_compare_inputs(["no/such.npz"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        aligniform.errors.OptionError: input 'no/such.npz' does not exist: give an .npz ...
    """
    if not specs:
        raise OptionError("give at least one input to compare")
    inputs: list[CompareInput] = []
    for spec in specs:
        found = input_kind(spec)
        if found is None:
            exists = Path(spec).expanduser().exists()
            raise OptionError(
                f"input {str(spec)!r} "
                + ("is a folder with no x.npy, checkpoint.pt or sentence model" if exists else "does not exist")
                + ": give an .npz or .npy file, a folder holding x.npy, a checkpoint, a run folder, "
                "a sentence-transformers model folder or an installed model package"
            )
        inputs.append(CompareInput(_display_name(spec), str(spec), *found))
    _make_names_unique(inputs)
    sentence = [item.spec for item in inputs if item.kind == "sentence"]
    if sentence and pairs is None:
        raise OptionError(f"{', '.join(sentence)}: a sentence model needs `pairs`, a .tsv of text pairs to embed")
    if min_score is not None and not sentence:
        raise OptionError("`min_score` filters the pairs a sentence model embeds; no input is a sentence model")
    scored = None if pairs is None else read_scored_pairs(pairs)
    if min_score is not None:
        assert scored is not None
        if scored.scores is None:
            raise OptionError(f"`min_score` needs a score column (third column) in the `pairs` file {pairs}")
        kept = int((scored.scores >= min_score).sum())
        if kept < 2:
            raise OptionError(f"`min_score` {min_score:g} keeps {kept} pair(s) of the `pairs` file {pairs}; lower it")
    return inputs, scored


def read_scored_pairs(path: str | Path) -> ScoredPairs:
    r"""Read ``first<TAB>second[<TAB>score]`` lines; a first line whose score is not a number is a header.

    Examples:
        >>> import tempfile, os
        >>> file = os.path.join(tempfile.mkdtemp(), "sts.tsv")
        >>> _ = open(file, "w").write("s1\ts2\tscore\na cat\ta kitten\t4.6\nthe sea\ta car\t0.2\n")
        >>> read_scored_pairs(file).scores.tolist()
        [4.6, 0.2]
    """
    from .sentences import _tsv_rows  # the layout checks (columns, encoding, blank lines) of analyze's pairs

    file = Path(path).expanduser()
    if not file.is_file():
        raise OptionError(
            f"`pairs` file {file} does not exist (expected a TSV: first text<TAB>second text[<TAB>score])"
        )
    try:
        rows = [fields for _, fields in _tsv_rows(file)]
    except ValueError as error:
        raise OptionError(f"`pairs`: {error}") from None
    if len(rows[0]) < 3:
        return ScoredPairs([r[0] for r in rows], [r[1] for r in rows], None)
    if not _is_number(rows[0][2]):
        rows = rows[1:]
    scores = []
    for number, fields in enumerate(rows, 1):
        if not _is_number(fields[2]):
            raise OptionError(f"`pairs` file {path}: the score of pair {number} is not a number: {fields[2]!r}")
        scores.append(float(fields[2]))
    if len(rows) < 2:
        raise OptionError(f"`pairs` file {path} holds {len(rows)} pair(s); give at least 2")
    return ScoredPairs([r[0] for r in rows], [r[1] for r in rows], np.asarray(scores))


def load_compare_input(
    item: CompareInput,
    pairs: ScoredPairs | None = None,
    min_score: float | None = None,
    *,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    split: str = "test",
    layer: str = "output",
    device: str = "cpu",
) -> CompareSet:
    """The embeddings of one checked input (a checkpoint's pairs come from ``dataset``'s ``split``, as ``analyze``)."""
    if item.kind == "file":
        from .files import load_embedding_file

        return CompareSet(load_embedding_file(item.path))
    if item.kind == "checkpoint":
        from .checkpoint import embeddings_from_checkpoint

        return CompareSet(embeddings_from_checkpoint(item.path, dataset, data_dir, split, layer, device))
    assert pairs is not None
    return _sentence_set(item, pairs, min_score, device)


def _sentence_set(item: CompareInput, pairs: ScoredPairs, min_score: float | None, device: str) -> CompareSet:
    """Every distinct sentence embedded once; pairs (scored >= ``min_score``) for alignment, all sentences as points."""
    from .sentences import load_sentence_model

    model = load_sentence_model(item.path, device)
    texts = list(dict.fromkeys(pairs.first + pairs.second))
    row = {text: index for index, text in enumerate(texts)}
    embedded = np.asarray(
        model.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False), np.float32
    )
    keep = np.ones(len(pairs.first), bool) if min_score is None else pairs.scores >= min_score  # type: ignore[operator]
    first = [row[text] for text, kept in zip(pairs.first, keep) if kept]
    second = [row[text] for text, kept in zip(pairs.second, keep) if kept]
    rule = "" if min_score is None else f" scored >= {min_score:g}"
    source = f"sentence model {item.spec}: {len(first)} pairs{rule}, {len(texts)} sentences"
    return CompareSet(EmbeddingSet(embedded[first], embedded[second], None, source), embedded)


def _is_number(text: str) -> bool:
    try:
        float(text.strip())
    except ValueError:
        return False
    return True


def _display_name(spec: str | Path) -> str:
    path = Path(str(spec).rstrip("/"))
    if path.name in ("checkpoint.pt", "best.pt", "x.npy"):
        path = path.parent
    return path.stem if path.suffix in (".npz", ".npy", ".pt") else path.name or str(spec)


def _make_names_unique(inputs: list[CompareInput]) -> None:
    seen: dict[str, int] = {}
    for index, item in enumerate(inputs):
        seen[item.name] = seen.get(item.name, 0) + 1
        if seen[item.name] > 1:
            inputs[index] = CompareInput(f"{item.name} ({seen[item.name]})", item.spec, item.kind, item.path)
