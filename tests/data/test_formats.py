"""aligniform.data.formats: CIFAR pickles (Python 2 and 3, safe unpickling) and STL-10 binaries."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from aligniform.data import DATASETS, DatasetError, load_dataset
from tests.data.fakes import CIFAR10_NAMES, cifar_rows, dump_pickle, make_cifar10, make_cifar100, make_stl10, py2_pickle


def test_cifar10_train_pixels_labels_and_classes(tmp_path):
    make_cifar10(tmp_path)
    ds = load_dataset("cifar10", tmp_path, "train")
    assert ds.images.shape == (10, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64
    assert ds.labels.tolist() == [1, 4, 2, 5, 3, 6, 4, 7, 5, 8]
    assert ds.classes == CIFAR10_NAMES and ds.name == "cifar10"
    # Image 3 = second image of batch 2: value at (c, y, x) is (c*1024 + y*32 + x + 20 + 7) % 256.
    c, y, x = 2, 5, 17
    assert int(ds.images[3, c, y, x]) == (c * 1024 + y * 32 + x + 27) % 256
    assert torch.equal(ds.images[0].flatten(), torch.from_numpy(cifar_rows(1, 10)[0]))


def test_cifar10_test_split_and_data_dir_is_the_extracted_folder(tmp_path):
    folder = make_cifar10(tmp_path)
    ds = load_dataset("cifar10", folder, "test")
    assert ds.labels.tolist() == [9, 0, 4]
    assert torch.equal(ds.images.reshape(3, -1), torch.from_numpy(cifar_rows(3, 99)))


def test_cifar10_reads_python2_pickles(tmp_path):
    folder = make_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(
        py2_pickle(
            {
                "batch_label": "testing batch 1 of 1",
                "data": cifar_rows(3, 50),
                "labels": [1, 2, 3],
                "filenames": ["x.png", "y.png", "z.png"],
            }
        )
    )
    (folder / "batches.meta").write_bytes(
        py2_pickle({"label_names": CIFAR10_NAMES, "num_cases_per_batch": 10000, "num_vis": 3072})
    )
    ds = load_dataset("cifar10", tmp_path, "test")
    assert ds.labels.tolist() == [1, 2, 3] and ds.classes == CIFAR10_NAMES
    assert torch.equal(ds.images.reshape(3, -1), torch.from_numpy(cifar_rows(3, 50)))


def test_cifar100_uses_fine_labels(tmp_path):
    make_cifar100(tmp_path)
    train = load_dataset("cifar100", tmp_path, "train")
    assert train.images.shape == (4, 3, 32, 32) and train.num_classes == 100
    assert train.labels.tolist() == [0, 42, 99, 7] and train.classes[42] == "c42"
    test = load_dataset("cifar100", tmp_path, "test")
    assert test.labels.tolist() == [3, 98]
    assert torch.equal(test.images.reshape(2, -1), torch.from_numpy(cifar_rows(2, 5)))


def test_corrupt_cifar_pickle_names_file_and_remedy(tmp_path):
    folder = make_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes(b"\x80\x02}q\x00(X")  # truncated pickle
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", tmp_path, "train")
    message = str(info.value)
    assert "data_batch_3" in message and "corrupt" in message
    assert "download=True" in message and DATASETS["cifar10"].url in message


def test_cifar_pickle_with_foreign_code_is_refused(tmp_path):
    folder = make_cifar10(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    dump_pickle(folder / "test_batch", {"data": Evil(), "labels": []})
    with pytest.raises(DatasetError, match="test_batch.*mkdir"):
        load_dataset("cifar10", tmp_path, "test")
    assert not marker.exists()


def test_stl10_column_major_transpose(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    raw = np.zeros(3 * 96 * 96, np.uint8)
    # File offset of channel 1, column x=5, row y=0 is 96*96 + 5*96 + 0.
    raw[96 * 96 + 5 * 96] = 200
    (folder / "test_X.bin").write_bytes(raw.tobytes())
    (folder / "test_y.bin").write_bytes(bytes([4]))
    ds = load_dataset("stl10", tmp_path, "test")
    assert ds.images.shape == (1, 3, 96, 96) and ds.images.is_contiguous()
    assert int(ds.images[0, 1, 0, 5]) == 200 and int(ds.images[0, 1, 5, 0]) == 0
    assert int(ds.images.sum()) == 200 and ds.labels.tolist() == [3]
    assert ds.classes[0] == "airplane"  # built-in names when class_names.txt is absent


def test_stl10_splits(tmp_path):
    fake = make_stl10(tmp_path)
    train = load_dataset("stl10", fake.folder, "train")
    assert torch.equal(train.images, torch.from_numpy(fake.train))
    assert train.labels.tolist() == [0, 9] and train.classes[7] == "monkey"
    test = load_dataset("stl10", tmp_path, "test")
    assert torch.equal(test.images, torch.from_numpy(fake.test))
    assert test.labels.tolist() == [2, 4, 9]
    unlabeled = load_dataset("stl10", tmp_path, "unlabeled")
    assert unlabeled.labels.tolist() == [-1, -1] and unlabeled.num_classes == 10
    both = load_dataset("stl10", tmp_path, "train+unlabeled", image_size=32)
    assert both.images.shape == (4, 3, 32, 32) and both.labels.tolist() == [0, 9, -1, -1]


def test_stl10_truncated_file_is_corrupt(tmp_path):
    fake = make_stl10(tmp_path)
    path = fake.folder / "train_X.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError) as info:
        load_dataset("stl10", tmp_path, "train")
    message = str(info.value)
    assert str(path) in message and "corrupt" in message and "download=True" in message


def test_stl10_label_count_mismatch_and_bad_label(tmp_path):
    fake = make_stl10(tmp_path)
    (fake.folder / "test_y.bin").write_bytes(bytes([1, 2]))
    with pytest.raises(DatasetError, match="holds 2 labels but .* holds 3 images"):
        load_dataset("stl10", tmp_path, "test")
    (fake.folder / "test_y.bin").write_bytes(bytes([1, 2, 11]))
    with pytest.raises(DatasetError, match="labels must be in 1..10"):
        load_dataset("stl10", tmp_path, "test")
