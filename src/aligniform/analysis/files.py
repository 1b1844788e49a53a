"""Embeddings stored as arrays: an ``.npz`` file or a folder of ``.npy`` files, read without pickle."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from .embeddings import EmbeddingSet

__all__ = ["EMBEDDING_ARRAYS", "ArraySizeError", "PickledArrayError", "load_embedding_file"]

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
        _check_npz(path)
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: _array(archive, name, path) for name in archive.files}
    except (PickledArrayError, ArraySizeError):
        raise
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
        with file.open("rb") as stream:
            _check_array_size(stream, file.stat().st_size, file, file.stem)
        return np.load(file, allow_pickle=False)
    except ArraySizeError:
        raise
    except ValueError as error:
        if _needs_pickle(error):
            raise PickledArrayError(_pickle_message(file, file.stem)) from None
        raise ValueError(f"{file} cannot be read as a .npy array ({error}); write it with numpy.save") from None
    except (OSError, EOFError) as error:
        raise ValueError(f"{file} cannot be read as a .npy array ({error}); write it with numpy.save") from None


class ArraySizeError(ValueError):
    """An array's header claims more data than its file holds (corrupt or truncated): refused before allocating."""


# The first bytes of a .npy file and of a zip archive (an .npz).
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"


def _check_npz(path: Path) -> None:
    """Raise unless ``path`` is a zip archive whose arrays hold the data their headers claim.

    Checked before ``np.load`` reads anything: a renamed ``.npy`` would come back as a bare array, and a
    header claiming a shape of 1e11 rows would make numpy try to allocate it.
    """
    with path.open("rb") as stream:
        start = stream.read(len(_NPY_MAGIC))
    if start.startswith(_NPY_MAGIC):
        raise ValueError("it is a single .npy array, not an .npz archive: was it renamed")
    if not start.startswith(_ZIP_MAGIC):
        raise ValueError("it is not a zip archive, as an .npz is")
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if member.filename.endswith(".npy"):
                with archive.open(member) as stream:
                    _check_array_size(stream, member.file_size, path, member.filename[: -len(".npy")])


def _check_array_size(stream: IO[bytes], size: int, path: Path, name: str) -> None:
    """Raise :class:`ArraySizeError` when the ``.npy`` header read from ``stream`` claims more than ``size`` bytes.

    ``size`` is the length of the whole ``.npy`` data (the file, or the archive member uncompressed). Headers
    numpy cannot parse are left to ``np.load``, which reports them.
    """
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            return
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        return
    if dtype.hasobject:  # pickled objects: refused by name when loaded
        return
    claimed = math.prod(shape) * dtype.itemsize
    available = size - stream.tell()
    if claimed > available:
        raise ArraySizeError(
            f"embedding file {path}: array {name} claims shape {tuple(shape)} of {dtype} ({claimed:,} bytes) but "
            f"the file holds {max(available, 0):,} bytes of data; the file is corrupt or truncated, write it again"
        )


class PickledArrayError(ValueError):
    """An array file holds Python objects, which only unpickling could read: refused, as it could run code."""


def _array(archive: Any, name: str, path: Path) -> np.ndarray:
    """One array of an open ``.npz``; an object array is refused by name."""
    try:
        return archive[name]
    except ValueError as error:
        if _needs_pickle(error):
            raise PickledArrayError(_pickle_message(path, name)) from None
        raise


def _needs_pickle(error: ValueError) -> bool:
    # numpy's words when allow_pickle=False meets an object array.
    return "allow_pickle" in str(error)


def _pickle_message(path: Path, name: str) -> str:
    dtype = "int64" if name == "labels" else "float32"
    converted = f"numpy.asarray({name}, dtype=numpy.{dtype})"
    fix = f"numpy.save(path, {converted})" if path.suffix == ".npy" else f"numpy.savez(path, {name}={converted}, ...)"
    return (
        f"embedding file {path}: array {name} holds Python objects (dtype object), which only pickle can read; "
        f"aligniform does not unpickle files, as that can run code stored in them. Save numbers instead, e.g. {fix}"
    )
