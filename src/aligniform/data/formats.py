"""Readers for the on-disk formats of CIFAR-10/100 (python pickles) and STL-10 (binary).

Each reader takes the folder the official archive extracts to, validates what it
reads, and raises :class:`DatasetError` naming the offending file instead of
letting a raw NumPy or pickle exception escape.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .dataset import DatasetError, ImageDataset

# --------------------------------------------------------------------------- CIFAR

CIFAR_FILES: dict[str, dict[str, list[str]]] = {
    "cifar10": {
        "train": [f"data_batch_{i}" for i in range(1, 6)] + ["batches.meta"],
        "test": ["test_batch", "batches.meta"],
    },
    "cifar100": {"train": ["train", "meta"], "test": ["test", "meta"]},
}
_CIFAR_KEYS = {  # (label key in a batch, class-name key in the meta file)
    "cifar10": ("labels", "label_names"),
    "cifar100": ("fine_labels", "fine_label_names"),
}
_CIFAR_PIXELS = 3 * 32 * 32


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The only callables a CIFAR pickle needs: NumPy array reconstruction helpers.

    Both the NumPy 1 (``numpy.core``) and NumPy 2 (``numpy._core``) module paths
    are mapped to the objects of the installed NumPy, which also avoids NumPy 2's
    deprecation warning for ``numpy.core``.
    """
    import codecs

    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    table = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): codecs.encode}
    for package in ("numpy.core", "numpy._core"):
        table[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        table[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        table[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return table


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except NumPy's array helpers.

    A pickle can run arbitrary code when loaded; the CIFAR files only ever need
    dicts, lists, strings, numbers and NumPy arrays, so anything else is refused.
    """

    _allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} (only NumPy arrays are allowed)") from None


def _load_pickle(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            # latin1 turns the Python 2 byte strings of the official release into
            # str (keys, names) and is what NumPy expects for the raw array data.
            obj = _ArrayOnlyUnpickler(handle, encoding="latin1").load()
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
        KeyError,
        OSError,
    ) as err:
        raise DatasetError(f"{path} is corrupt: it is not a readable pickle ({err})") from err
    if not isinstance(obj, dict):
        raise DatasetError(f"{path} is corrupt: expected a dict, got {type(obj).__name__}")
    # Pickles written by Python 3 code may use bytes keys; normalise to str.
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _as_str(value: Any) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def read_cifar(folder: str | Path, variant: str, split: str) -> ImageDataset:
    """Read a CIFAR-10 or CIFAR-100 split from the extracted python release.

    Args:
        folder: The ``cifar-10-batches-py`` or ``cifar-100-python`` folder.
        variant: ``"cifar10"`` or ``"cifar100"`` (CIFAR-100 uses fine labels).
        split: ``"train"`` or ``"test"``.

    Returns:
        An :class:`ImageDataset` of ``uint8`` images ``(N, 3, 32, 32)``.

    Raises:
        DatasetError: a file is missing or corrupt.

    Examples:
        >>> ds = read_cifar("data/cifar-10-batches-py", "cifar10", "test")  # doctest: +SKIP
        >>> ds.images.shape  # doctest: +SKIP
        torch.Size([10000, 3, 32, 32])
    """
    folder = Path(folder)
    files = CIFAR_FILES[variant][split]
    label_key, names_key = _CIFAR_KEYS[variant]
    meta_path = folder / files[-1]
    meta = _load_pickle(meta_path)
    if names_key not in meta:
        raise DatasetError(f"{meta_path} is corrupt: it has no {names_key!r} entry")
    classes = [_as_str(c) for c in meta[names_key]]

    images, labels = [], []
    for file_name in files[:-1]:
        path = folder / file_name
        batch = _load_pickle(path)
        if "data" not in batch or label_key not in batch:
            raise DatasetError(f"{path} is corrupt: expected entries 'data' and {label_key!r}, found {sorted(batch)}")
        data = np.asarray(batch["data"])
        batch_labels = np.asarray(batch[label_key])
        if (
            data.dtype != np.uint8
            and np.issubdtype(data.dtype, np.integer)
            and data.size
            and data.min() >= 0
            and data.max() <= 255
        ):
            data = data.astype(np.uint8)  # e.g. pixels pickled as a list of ints
        if data.ndim != 2 or data.shape[1] != _CIFAR_PIXELS or data.dtype != np.uint8:
            raise DatasetError(
                f"{path} is corrupt: 'data' should be uint8 of shape (N, {_CIFAR_PIXELS}), "
                f"got {data.dtype} {data.shape}"
            )
        if batch_labels.shape != (data.shape[0],) or not np.issubdtype(batch_labels.dtype, np.integer):
            raise DatasetError(
                f"{path} is corrupt: expected {data.shape[0]} integer labels, "
                f"got {batch_labels.dtype} {batch_labels.shape}"
            )
        if batch_labels.size and (batch_labels.min() < 0 or batch_labels.max() >= len(classes)):
            raise DatasetError(
                f"{path} is corrupt: labels must be in [0, {len(classes) - 1}], got "
                f"[{batch_labels.min()}, {batch_labels.max()}]"
            )
        # Rows are the 1024 red, then green, then blue values of a row-major image.
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(batch_labels.astype(np.int64))
    return ImageDataset(
        images=torch.from_numpy(np.concatenate(images)),
        labels=torch.from_numpy(np.concatenate(labels)),
        classes=classes,
        name=variant,
    )


# --------------------------------------------------------------------------- STL-10

STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
_STL10_IMAGE_BYTES = 3 * 96 * 96
# Which (images, labels) files make up each split; None = unlabelled.
_STL10_PARTS: dict[str, list[tuple[str, str | None]]] = {
    "train": [("train_X.bin", "train_y.bin")],
    "test": [("test_X.bin", "test_y.bin")],
    "unlabeled": [("unlabeled_X.bin", None)],
    "train+unlabeled": [("train_X.bin", "train_y.bin"), ("unlabeled_X.bin", None)],
}


def stl10_files(split: str) -> list[str]:
    """File names needed for an STL-10 split (``class_names.txt`` is optional).

    Examples:
        >>> stl10_files("train")
        ['train_X.bin', 'train_y.bin']
    """
    return [f for pair in _STL10_PARTS[split] for f in pair if f is not None]


def _stl10_count(path: Path) -> int:
    size = path.stat().st_size
    if size == 0 or size % _STL10_IMAGE_BYTES:
        raise DatasetError(
            f"{path} is corrupt (truncated?): its size, {size} bytes, is not a positive "
            f"multiple of {_STL10_IMAGE_BYTES} bytes (one 3x96x96 image)"
        )
    return size // _STL10_IMAGE_BYTES


def _stl10_labels(path: Path, expected: int) -> np.ndarray:
    size = path.stat().st_size
    if size != expected:
        raise DatasetError(
            f"{path} is corrupt (truncated?): it holds {size} labels but the image file "
            f"next to it holds {expected} images"
        )
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise DatasetError(f"{path} is corrupt: labels must be in 1..10, got [{labels.min()}, {labels.max()}]")
    return labels - 1


def read_stl10(folder: str | Path, split: str, chunk: int = 2048) -> ImageDataset:
    """Read an STL-10 split from the extracted binary release.

    Images are stored channel by channel, each channel column-major; they are
    read through a memory map and transposed to row-major ``(3, 96, 96)`` in
    chunks, so peak memory is about the size of the result.

    Args:
        folder: The ``stl10_binary`` folder.
        split: ``"train"``, ``"test"``, ``"unlabeled"`` or ``"train+unlabeled"``.
        chunk: Images copied per step.

    Returns:
        An :class:`ImageDataset` of ``uint8`` images ``(N, 3, 96, 96)``; labels
        are 0..9, and -1 for unlabelled images.

    Raises:
        DatasetError: a file is missing or has an impossible size.

    Examples:
        >>> read_stl10("data/stl10_binary", "test").images.shape  # doctest: +SKIP
        torch.Size([8000, 3, 96, 96])
    """
    folder = Path(folder)
    parts = []
    for images_name, labels_name in _STL10_PARTS[split]:
        images_path = folder / images_name
        count = _stl10_count(images_path)
        if labels_name is None:
            labels = np.full(count, -1, dtype=np.int64)
        else:
            labels = _stl10_labels(folder / labels_name, count)
        parts.append((images_path, count, labels))

    total = sum(count for _, count, _ in parts)
    images = torch.empty((total, 3, 96, 96), dtype=torch.uint8)
    out = images.numpy()  # shares memory with `images`
    offset = 0
    for images_path, count, _ in parts:
        stored = np.memmap(images_path, dtype=np.uint8, mode="r", shape=(count, 3, 96, 96))
        for start in range(0, count, chunk):
            stop = min(start + chunk, count)
            # The file is column-major per channel: swap the two spatial axes.
            out[offset + start : offset + stop] = stored[start:stop].transpose(0, 1, 3, 2)
        del stored
        offset += count

    classes = list(STL10_CLASSES)
    names_path = folder / "class_names.txt"
    if names_path.is_file():
        names = [line.strip() for line in names_path.read_text(errors="replace").splitlines()]
        names = [n for n in names if n]
        if len(names) != len(STL10_CLASSES):
            raise DatasetError(
                f"{names_path} is corrupt: expected {len(STL10_CLASSES)} class names, found {len(names)}"
            )
        classes = names
    return ImageDataset(
        images=images,
        labels=torch.from_numpy(np.concatenate([labels for _, _, labels in parts])),
        classes=classes,
        name="stl10",
    )
