"""aligniform.data.imagefolder: class-per-folder images, with and without split folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aligniform.data import DatasetError, load_dataset


def save_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def solid(h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


def test_imagefolder_split_layout(tmp_path):
    save_png(tmp_path / "train" / "dog" / "b.png", solid(4, 4, (1, 2, 3)))
    save_png(tmp_path / "train" / "dog" / "a.png", solid(4, 4, (10, 20, 30)))
    save_png(tmp_path / "train" / "cat" / "x.png", solid(4, 4, (255, 0, 7)))
    save_png(tmp_path / "test" / "zebra" / "z.png", solid(4, 4, (9, 9, 9)))
    # A grey-scale image is converted to RGB.
    Image.fromarray(np.full((4, 4), 77, np.uint8)).save(tmp_path / "test" / "zebra" / "grey.png")
    (tmp_path / "train" / "dog" / "notes.txt").write_text("ignored")

    train = load_dataset("imagefolder", tmp_path, "train")
    assert train.classes == ["cat", "dog", "zebra"]  # union over splits, sorted
    assert train.images.shape == (3, 3, 4, 4) and train.images.dtype == torch.uint8
    assert train.labels.tolist() == [0, 1, 1]
    assert train.images[:, :, 2, 3].tolist() == [[255, 0, 7], [10, 20, 30], [1, 2, 3]]
    test = load_dataset("imagefolder", tmp_path, "test")
    assert test.labels.tolist() == [2, 2]
    assert test.images[:, :, 0, 0].tolist() == [[77, 77, 77], [9, 9, 9]]
    with pytest.raises(DatasetError, match="unknown split 'all'.*test, train"):
        load_dataset("imagefolder", tmp_path, "all")


def test_imagefolder_flat_layout_and_sizes(tmp_path):
    pixels = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    save_png(tmp_path / "b" / "1.png", pixels)
    save_png(tmp_path / "a" / "1.PNG", solid(6, 8, (5, 5, 5)))
    ds = load_dataset("imagefolder", tmp_path, "all")
    assert ds.classes == ["a", "b"] and ds.labels.tolist() == [0, 1]
    assert ds.images.shape == (2, 3, 6, 8)
    assert torch.equal(ds.images[1], torch.from_numpy(pixels).permute(2, 0, 1))
    with pytest.raises(DatasetError, match="available: all, train"):
        load_dataset("imagefolder", tmp_path, "test")

    save_png(tmp_path / "a" / "2.bmp", solid(10, 10, (200, 100, 0)))
    with pytest.raises(DatasetError, match="different sizes.*image_size"):
        load_dataset("imagefolder", tmp_path, "train")
    resized = load_dataset("imagefolder", tmp_path, "train", image_size=5)
    assert resized.images.shape == (3, 3, 5, 5)
    # A solid colour stays exactly that colour under bilinear resizing.
    assert resized.images[1, :, 2, 2].tolist() == [200, 100, 0]


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DatasetError, match="is not a folder"):
        load_dataset("imagefolder", tmp_path / "missing")
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="cannot decode image .*broken.jpg"):
        load_dataset("imagefolder", tmp_path)
    with pytest.raises(DatasetError, match="cannot be downloaded"):
        load_dataset("imagefolder", tmp_path, download=True)
