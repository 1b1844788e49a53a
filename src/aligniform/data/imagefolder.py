"""Class-per-folder image collections decoded with Pillow.

Two layouts are understood::

    root/<split>/<class>/*.png      # split layout, e.g. root/train/cat/1.png
    root/<class>/*.png              # flat layout: only split "train" or "all"

Classes are sorted by folder name. In the split layout the class list is the
union over all split folders, so a label means the same class in every split
even if a split lacks some class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .._extras import requires_extra
from .dataset import DatasetError, ImageDataset, resize_images

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
FLAT_SPLITS = ("all", "train")


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _has_direct_images(folder: Path) -> bool:
    return any(p.is_file() and _is_image(p) for p in folder.iterdir())


def _images_under(folder: Path) -> list[Path]:
    # Recursive, so class folders may be organised further (e.g. by date).
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and _is_image(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def imagefolder_splits(root: str | Path) -> dict[str, Path]:
    """Map each available split name to its folder.

    Args:
        root: Dataset root folder.

    Returns:
        ``{split: folder}``. For the flat layout this is
        ``{"all": root, "train": root}``.

    Raises:
        DatasetError: ``root`` is not a folder or has no sub-folders.

    Examples:
        >>> imagefolder_splits("photos")  # doctest: +SKIP
        {'test': PosixPath('photos/test'), 'train': PosixPath('photos/train')}
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"imagefolder: {root} is not a folder")
    top = _subdirs(root)
    if not top:
        raise DatasetError(
            f"imagefolder: {root} has no sub-folders; expected {root}/<class>/<image> or "
            f"{root}/<split>/<class>/<image> with extensions {', '.join(IMAGE_EXTENSIONS)}"
        )
    if any(_has_direct_images(d) for d in top):
        return {split: root for split in FLAT_SPLITS}
    return {d.name: d for d in top if _subdirs(d)}


def _decode(path: Path) -> np.ndarray:
    with requires_extra("train"):
        from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise DatasetError(f"imagefolder: cannot decode image {path}: {err}") from err


def read_imagefolder(root: str | Path, split: str = "train", image_size: int | None = None) -> ImageDataset:
    """Read a class-per-folder image collection into memory.

    Every image is converted to RGB. Without ``image_size`` all images must
    share one size; with it each image is resized (antialiased bilinear) to
    ``image_size x image_size``.

    Args:
        root: Dataset root folder (see the module docstring for layouts).
        split: A split folder name, or ``"train"``/``"all"`` for the flat layout.
        image_size: Optional target size in pixels.

    Returns:
        An :class:`ImageDataset` of ``uint8`` images ``(N, 3, H, W)``.

    Raises:
        DatasetError: missing folder, unknown split, no images, an undecodable
            image, or mixed sizes without ``image_size``.

    Examples:
        >>> ds = read_imagefolder("photos", "train", image_size=64)  # doctest: +SKIP
        >>> ds.images.shape[1:]  # doctest: +SKIP
        torch.Size([3, 64, 64])
    """
    root = Path(root)
    splits = imagefolder_splits(root)
    if split not in splits:
        available = ", ".join(sorted(splits)) or "none (no <split>/<class>/ folders found)"
        raise DatasetError(f"unknown split {split!r} for imagefolder at {root}; available: {available}")
    folder = splits[split]
    classes = sorted({c.name for f in set(splits.values()) for c in _subdirs(f)})
    files, labels = [], []
    for class_dir in _subdirs(folder):
        class_files = _images_under(class_dir)
        files.extend(class_files)
        labels.extend([classes.index(class_dir.name)] * len(class_files))
    if not files:
        raise DatasetError(
            f"imagefolder: no images with extensions {', '.join(IMAGE_EXTENSIONS)} under {folder}/<class>/"
        )

    arrays = [_decode(path) for path in files]
    shapes = {a.shape for a in arrays}
    if image_size is None:
        if len(shapes) > 1:
            sizes = sorted(f"{w}x{h}" for h, w, _ in shapes)
            raise DatasetError(
                f"imagefolder: images under {folder} have different sizes ({', '.join(sizes[:4])}"
                f"{', ...' if len(sizes) > 4 else ''}); pass image_size=<pixels> to resize them"
            )
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    else:
        images = torch.empty((len(arrays), 3, image_size, image_size), dtype=torch.uint8)
        # Resize images of equal size together: one interpolate call per size.
        for shape in shapes:
            members = [i for i, a in enumerate(arrays) if a.shape == shape]
            batch = torch.from_numpy(np.stack([arrays[i] for i in members])).permute(0, 3, 1, 2)
            images[members] = resize_images(batch.contiguous(), image_size)
    return ImageDataset(
        images=images,
        labels=torch.tensor(labels, dtype=torch.int64),
        classes=classes,
        name="imagefolder",
    )
