"""Embeddings stored as arrays: an ``.npz`` file or a folder of ``.npy`` files, read without pickle."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .embeddings import EmbeddingSet

__all__ = ["EMBEDDING_ARRAYS", "load_embedding_file"]

EMBEDDING_ARRAYS: tuple[str, ...] = ("x", "y", "labels")
"""Array names an embedding file may hold: ``x`` (required), ``y`` and ``labels`` (optional)."""


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
            f"embedding folder {folder} has no x.npy (found: {present}); "
            f"it needs x.npy, and optionally y.npy and labels.npy"
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
