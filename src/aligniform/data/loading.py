"""``load_dataset``: find (or download) a dataset's files and read the requested split."""

from __future__ import annotations

from pathlib import Path

from .._validation import check_positive_int
from .builtin import load_digits, load_mnist5k
from .dataset import DatasetError, DatasetInfo, ImageDataset, dataset_info, resize_images
from .download import download_and_extract, extract_archive
from .formats import CIFAR_FILES, read_cifar, read_stl10, stl10_files
from .imagefolder import read_imagefolder

_FILE_DATASETS = ("cifar10", "cifar100", "stl10")


def _required_files(info: DatasetInfo, split: str) -> list[str]:
    return stl10_files(split) if info.name == "stl10" else CIFAR_FILES[info.name][split]


def _how_to_get(info: DatasetInfo, data_dir: Path | str) -> str:
    return (
        f"call load_dataset({info.name!r}, data_dir={str(data_dir)!r}, "
        f"download=True) (the option `download`), or download {info.url} by hand and put "
        f"the archive {info.archive} (or the {info.folder}/ folder extracted from it) "
        f"in {data_dir}."
    )


def _locate(info: DatasetInfo, data_dir: str | Path | None, split: str, download: bool) -> Path:
    """Return the folder holding ``info``'s files for ``split``, fetching them if allowed."""
    required = _required_files(info, split)
    if data_dir is None:
        raise DatasetError(
            f"{info.name} is read from files ({', '.join(required)}) but data_dir is None; "
            f"pass data_dir=<folder>. With download=True (the option `download`) the "
            f"archive is downloaded from {info.url} into that folder."
        )
    data_dir = Path(data_dir).expanduser()
    candidates = [data_dir, data_dir / info.folder]

    def find() -> Path | None:
        for folder in candidates:
            if all((folder / name).is_file() for name in required):
                return folder
        return None

    if (found := find()) is not None:
        return found
    archive = data_dir / info.archive
    if download:
        download_and_extract(info.url, data_dir, info.md5, info.archive, extracted_name=info.folder, progress=True)
    elif archive.is_file():
        # A hand-placed archive is extracted without a checksum test: it may be a
        # legitimate re-pack, and the readers validate every file anyway.
        extract_archive(archive, data_dir)
    if (found := find()) is not None:
        return found

    # Prefer reporting an incomplete extracted folder over a generic "not found".
    extracted = data_dir / info.folder
    if extracted.is_dir():
        partial: Path | None = extracted
    elif data_dir.name == info.folder or any((data_dir / n).is_file() for n in required):
        partial = data_dir
    else:
        partial = None
    if partial is not None:
        missing = [name for name in required if not (partial / name).is_file()]
        detail = f"{partial} is incomplete: {', '.join(missing)} missing"
        if download and partial == extracted:
            detail += " (the folder exists, so nothing was downloaded; delete it to download the dataset again)"
    else:
        detail = f"looked in {data_dir} and in {extracted} for {', '.join(required)}" + (
            "" if download else f", and for the archive {archive}"
        )
    raise DatasetError(f"{info.name} split {split!r} not found: {detail}. To get it, {_how_to_get(info, data_dir)}")


def _validate_image_size(image_size: object) -> int | None:
    if image_size is None:
        return None
    return check_positive_int(image_size, "image_size")


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    split: str = "train",
    download: bool = False,
    image_size: int | None = None,
) -> ImageDataset:
    """Load one split of a registered dataset into memory.

    ``mnist5k`` and ``digits`` ship with installed packages and ignore
    ``data_dir``/``download``. ``cifar10``, ``cifar100`` and ``stl10`` are read
    from ``data_dir``, which may hold the extracted folder, be that folder, or
    hold only the ``.tar.gz`` archive (extracted on first use).
    ``imagefolder`` reads ``data_dir/<split>/<class>/*`` or ``data_dir/<class>/*``.

    Args:
        name: Registry name (see :data:`DATASETS`), case-insensitive.
        data_dir: Folder with the dataset files; also the download cache.
        split: Split name; :func:`dataset_info` lists each dataset's ``splits``.
        download: Download and verify the official archive if the files are
            missing (``cifar10``, ``cifar100``, ``stl10`` only).
        image_size: Resize images to ``image_size x image_size`` (antialiased
            bilinear) after loading.

    Returns:
        An :class:`ImageDataset` with ``uint8`` images ``(N, C, H, W)``.

    Raises:
        DatasetError: unknown dataset or split, files missing or corrupt
            (the message says where it looked and how to get the files), or a
            failed download.
        ValueError: ``image_size`` is not a positive integer.

    Examples:
        >>> train = load_dataset("mnist5k", split="train")
        >>> train.images.shape, train.num_classes
        (torch.Size([4000, 1, 28, 28]), 10)
        >>> load_dataset("digits", split="test", image_size=16).image_size
        16
        >>> cifar = load_dataset("cifar10", "data", "test", download=True)  # doctest: +SKIP
    """
    info = dataset_info(name)
    size = _validate_image_size(image_size)
    if info.splits and split not in info.splits:
        raise DatasetError(
            f"unknown split {split!r} for dataset {info.name!r}; expected one of: {', '.join(info.splits)}"
        )
    if download and info.name == "imagefolder":
        raise DatasetError(
            "imagefolder cannot be downloaded (download=True / `download`); put the "
            "images in data_dir/<split>/<class>/ or data_dir/<class>/ yourself"
        )

    if info.name == "mnist5k":
        dataset = load_mnist5k(split)
    elif info.name == "digits":
        dataset = load_digits(split)
    elif info.name == "imagefolder":
        if data_dir is None:
            raise DatasetError(
                "imagefolder needs data_dir=<folder> holding <split>/<class>/<image> or <class>/<image> files"
            )
        return read_imagefolder(Path(data_dir).expanduser(), split, size)
    elif info.name in _FILE_DATASETS:
        folder = _locate(info, data_dir, split, download)
        try:
            if info.name == "stl10":
                dataset = read_stl10(folder, split)
            else:
                dataset = read_cifar(folder, info.name, split)
        except (DatasetError, OSError) as err:
            raise DatasetError(
                f"{info.name} split {split!r} in {folder} cannot be read: {err}. "
                f"Delete {folder} (and {info.archive}, if present) and get the dataset "
                f"again: {_how_to_get(info, data_dir)}"
            ) from err
    else:  # a registry entry without a loader is a programming error
        raise DatasetError(f"no loader is implemented for dataset {info.name!r}")

    if size is not None:
        dataset.images = resize_images(dataset.images, size)
    return dataset
