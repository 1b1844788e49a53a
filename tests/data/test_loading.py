"""aligniform.data.loading: load_dataset locating files, extracting archives, downloading, and its messages."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from aligniform.data import DATASETS, DatasetError, load_dataset
from tests.data.fakes import make_cifar10, make_stl10, make_targz


def test_cifar_archive_only_is_extracted(tmp_path):
    make_targz(make_cifar10(tmp_path / "build"), tmp_path / "cifar-10-python.tar.gz")
    cache = tmp_path / "cache"
    cache.mkdir()
    (tmp_path / "cifar-10-python.tar.gz").rename(cache / "cifar-10-python.tar.gz")
    ds = load_dataset("cifar10", cache, "test", image_size=16)
    assert (cache / "cifar-10-batches-py" / "test_batch").is_file()
    assert ds.images.shape == (3, 3, 16, 16) and ds.labels.tolist() == [9, 0, 4]
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no staging left


def test_cifar_missing_folder_message(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar100", tmp_path / "nowhere", "test")
    message = str(info.value)
    for expected in (
        str(tmp_path / "nowhere"),
        "test, meta",
        "cifar-100-python.tar.gz",
        "download=True",
        "`download`",
        DATASETS["cifar100"].url,
    ):
        assert expected in message


def test_file_dataset_without_data_dir(tmp_path):
    with pytest.raises(DatasetError, match="data_dir is None.*download=True"):
        load_dataset("cifar10")
    with pytest.raises(DatasetError, match="imagefolder needs data_dir"):
        load_dataset("imagefolder")


def test_bad_split_lists_valid_ones(tmp_path):
    with pytest.raises(DatasetError, match="unknown split 'val'.*train, test"):
        load_dataset("cifar10", tmp_path, "val")
    with pytest.raises(DatasetError, match="train\\+unlabeled"):
        load_dataset("stl10", tmp_path, "extra")
    with pytest.raises(DatasetError, match="unknown split 'unlabeled'"):
        load_dataset("mnist5k", split="unlabeled")


def test_stl10_missing_files_message(tmp_path):
    make_stl10(tmp_path)
    (tmp_path / "stl10_binary" / "unlabeled_X.bin").unlink()
    with pytest.raises(DatasetError) as info:
        load_dataset("stl10", tmp_path, "unlabeled")
    message = str(info.value)
    assert "unlabeled_X.bin missing" in message and str(tmp_path) in message
    assert "`download`" in message and "stl10_binary.tar.gz" in message


def test_load_dataset_download(tmp_path, http_server, monkeypatch):
    body = make_targz(make_cifar10(tmp_path / "build"), tmp_path / "c.tar.gz")
    http_server.files["/cifar-10-python.tar.gz"] = body
    fake = dataclasses.replace(
        DATASETS["cifar10"], url=f"{http_server.url}/cifar-10-python.tar.gz", md5=hashlib.md5(body).hexdigest()
    )
    monkeypatch.setitem(DATASETS, "cifar10", fake)
    cache = tmp_path / "new" / "cache"
    ds = load_dataset("cifar10", cache, "test", download=True)
    assert ds.labels.tolist() == [9, 0, 4]
    assert load_dataset("cifar10", cache, "train", download=True).images.shape[0] == 10
    assert http_server.hits["/cifar-10-python.tar.gz"] == 1

    wrong = dataclasses.replace(fake, md5="f" * 32)
    monkeypatch.setitem(DATASETS, "cifar10", wrong)
    with pytest.raises(DatasetError, match=f"expected md5 {'f' * 32}"):
        load_dataset("cifar10", tmp_path / "other", "test", download=True)
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == []
