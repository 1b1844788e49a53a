"""Tests for aligniform.data: fake datasets in every on-disk format, a loopback
HTTP server for downloads, the bundled mnist5k/digits, and train_val_split."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import os
import pickle
import struct
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from aligniform import data
from aligniform.data import (
    DATASETS,
    DatasetError,
    ImageDataset,
    dataset_info,
    download_and_extract,
    download_file,
    extract_archive,
    load_dataset,
    train_val_split,
)

# ---------------------------------------------------------------- fake-data builders

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _cifar_rows(n: int, offset: int) -> np.ndarray:
    """n flattened 3x32x32 images; row i holds (arange(3072) + offset + 7 i) mod 256."""
    base = np.arange(3 * 32 * 32)[None, :] + offset + 7 * np.arange(n)[:, None]
    return (base % 256).astype(np.uint8)


def _dump(path: Path, obj: object, protocol: int = 2) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def py2_pickle(obj: object) -> bytes:
    """Protocol-2 pickle laid out as Python 2's cPickle wrote the official CIFAR files:
    byte strings as BINSTRING and arrays via numpy.core.multiarray._reconstruct."""

    def enc(v: object) -> bytes:
        if isinstance(v, (str, bytes)):
            raw = v.encode("latin1") if isinstance(v, str) else v
            return b"T" + struct.pack("<i", len(raw)) + raw
        if isinstance(v, bool):
            return b"\x88" if v else b"\x89"
        if isinstance(v, int):
            return b"J" + struct.pack("<i", v)
        if isinstance(v, list):
            return b"](" + b"".join(enc(x) for x in v) + b"e"
        if isinstance(v, dict):
            return b"}(" + b"".join(enc(k) + enc(x) for k, x in v.items()) + b"u"
        assert isinstance(v, np.ndarray) and v.dtype == np.uint8
        dtype = (
            b"cnumpy\ndtype\n"
            + enc("u1")
            + enc(0)
            + enc(1)
            + b"\x87R"
            + b"("
            + enc(3)
            + enc("|")
            + b"NNN"
            + enc(-1)
            + enc(-1)
            + enc(0)
            + b"tb"
        )
        shape = b"(" + b"".join(enc(d) for d in v.shape) + b"t"
        return (
            b"cnumpy.core.multiarray\n_reconstruct\n"
            + b"cnumpy\nndarray\n"
            + enc(0)
            + b"\x85"
            + enc("b")
            + b"\x87R"
            + b"("
            + enc(1)
            + shape
            + dtype
            + enc(False)
            + enc(v.tobytes())
            + b"tb"
        )

    return b"\x80\x02" + enc(obj) + b"."


def make_cifar10(root: Path) -> Path:
    """Five 2-image train batches and a 3-image test batch, bytes keys like the release."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for b in range(1, 6):
        _dump(
            folder / f"data_batch_{b}",
            {
                b"batch_label": b"training batch",
                b"data": _cifar_rows(2, offset=10 * b),
                b"labels": [b % 10, (b + 3) % 10],
                b"filenames": [b"a.png", b"b.png"],
            },
        )
    _dump(folder / "test_batch", {b"data": _cifar_rows(3, offset=99), b"labels": [9, 0, 4]})
    _dump(folder / "batches.meta", {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_cases_per_batch": 2})
    return folder


def make_cifar100(root: Path) -> Path:
    """str keys and protocol 5 this time, to cover pickles written by Python 3."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    _dump(
        folder / "train",
        {"data": _cifar_rows(4, 1), "fine_labels": [0, 42, 99, 7], "coarse_labels": [0, 1, 2, 3]},
        protocol=5,
    )
    _dump(folder / "test", {"data": _cifar_rows(2, 5), "fine_labels": [3, 98], "coarse_labels": [1, 1]}, protocol=5)
    _dump(
        folder / "meta",
        {"fine_label_names": [f"c{i:02d}" for i in range(100)], "coarse_label_names": [f"k{i}" for i in range(20)]},
        protocol=5,
    )
    return folder


def make_targz(folder: Path, archive: Path) -> bytes:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive.read_bytes()


def stl_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)


def write_stl(path: Path, images: np.ndarray) -> None:
    # The release stores each channel column-major: write the transpose.
    path.write_bytes(np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes())


def make_stl10(root: Path) -> SimpleNamespace:
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    fake = SimpleNamespace(
        folder=folder,
        train=stl_images(2, 1),
        test=stl_images(3, 2),
        unlabeled=stl_images(2, 3),
        train_y=[1, 10],
        test_y=[3, 5, 10],
    )
    write_stl(folder / "train_X.bin", fake.train)
    write_stl(folder / "test_X.bin", fake.test)
    write_stl(folder / "unlabeled_X.bin", fake.unlabeled)
    (folder / "train_y.bin").write_bytes(bytes(fake.train_y))
    (folder / "test_y.bin").write_bytes(bytes(fake.test_y))
    (folder / "class_names.txt").write_text("\n".join(data.formats.STL10_CLASSES) + "\n")
    return fake


def save_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def solid(h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


# ---------------------------------------------------------------- loopback server


@pytest.fixture
def http_server(monkeypatch):
    """Serve `files` (path -> bytes) on 127.0.0.1; `hits` counts requests per path."""
    monkeypatch.setenv("no_proxy", "*")  # never route loopback through a proxy
    files: dict[str, bytes] = {}
    hits: collections.Counter = collections.Counter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server naming)
            hits[self.path] += 1
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_address[1]}", files=files, hits=hits)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# ---------------------------------------------------------------- registry / container


def test_registry_metadata_matches_the_official_archives():
    assert dataset_info("CIFAR10").md5 == "c58f30108f718f92721af3b95e74349a"
    assert DATASETS["cifar100"].md5 == "eb9058c3a382ffc7106e4002c42a8d85"
    assert DATASETS["stl10"].md5 == "91f7769df0f17e558f3565bffb0c7dfb"
    assert DATASETS["stl10"].url == "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
    assert DATASETS["stl10"].train_split == "train+unlabeled"
    assert DATASETS["mnist5k"].augmentation == "digits"
    assert DATASETS["cifar10"].augmentation == "paper"
    for info in DATASETS.values():
        assert len(info.mean) == len(info.std) == info.channels
        assert all(0 < s < 1 for s in info.std)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(DatasetError, match="unknown dataset 'mnist'.*cifar10.*mnist5k"):
        dataset_info("mnist")
    with pytest.raises(ValueError, match="stl10"):  # DatasetError is a ValueError
        load_dataset("imagenet")


def test_image_dataset_subset_and_properties():
    images = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 3, 2, 2)
    ds = ImageDataset(images, torch.tensor([0, 1, 2, 1, -1]), ["a", "b", "c"], "toy")
    assert ds.images.is_contiguous() and ds.labels.dtype == torch.int64
    assert (len(ds), ds.num_classes, ds.channels, ds.image_size) == (5, 3, 3, 2)
    sub = ds.subset(np.array([4, 1]))
    assert sub.images[:, 0, 0, 0].tolist() == [4, 1] and sub.labels.tolist() == [-1, 1]
    assert sub.classes == ["a", "b", "c"] and sub.name == "toy"
    masked = ds.subset(torch.tensor([True, False, False, True, False]))
    assert masked.labels.tolist() == [0, 1]
    assert len(ds.subset([])) == 0
    assert "n=5" in repr(ds)
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(images.float(), ds.labels, ds.classes, "toy")
    with pytest.raises(ValueError, match=r"labels must lie in \[-1, 2\]"):
        ImageDataset(images, torch.tensor([0, 1, 2, 3, 0]), ds.classes, "toy")
    with pytest.raises(ValueError, match="shape"):
        ImageDataset(images, torch.tensor([0, 1]), ds.classes, "toy")


# ---------------------------------------------------------------- CIFAR


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
    assert torch.equal(ds.images[0].flatten(), torch.from_numpy(_cifar_rows(1, 10)[0]))


def test_cifar10_test_split_and_data_dir_is_the_extracted_folder(tmp_path):
    folder = make_cifar10(tmp_path)
    ds = load_dataset("cifar10", folder, "test")
    assert ds.labels.tolist() == [9, 0, 4]
    assert torch.equal(ds.images.reshape(3, -1), torch.from_numpy(_cifar_rows(3, 99)))


def test_cifar10_reads_python2_pickles(tmp_path):
    folder = make_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(
        py2_pickle(
            {
                "batch_label": "testing batch 1 of 1",
                "data": _cifar_rows(3, 50),
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
    assert torch.equal(ds.images.reshape(3, -1), torch.from_numpy(_cifar_rows(3, 50)))


def test_cifar100_uses_fine_labels(tmp_path):
    make_cifar100(tmp_path)
    train = load_dataset("cifar100", tmp_path, "train")
    assert train.images.shape == (4, 3, 32, 32) and train.num_classes == 100
    assert train.labels.tolist() == [0, 42, 99, 7] and train.classes[42] == "c42"
    test = load_dataset("cifar100", tmp_path, "test")
    assert test.labels.tolist() == [3, 98]
    assert torch.equal(test.images.reshape(2, -1), torch.from_numpy(_cifar_rows(2, 5)))


def test_cifar_archive_only_is_extracted(tmp_path):
    make_targz(make_cifar10(tmp_path / "build"), tmp_path / "cifar-10-python.tar.gz")
    cache = tmp_path / "cache"
    cache.mkdir()
    (tmp_path / "cifar-10-python.tar.gz").rename(cache / "cifar-10-python.tar.gz")
    ds = load_dataset("cifar10", cache, "test", image_size=16)
    assert (cache / "cifar-10-batches-py" / "test_batch").is_file()
    assert ds.images.shape == (3, 3, 16, 16) and ds.labels.tolist() == [9, 0, 4]
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no staging left


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

    _dump(folder / "test_batch", {"data": Evil(), "labels": []})
    with pytest.raises(DatasetError, match="test_batch.*mkdir"):
        load_dataset("cifar10", tmp_path, "test")
    assert not marker.exists()


def test_cifar_missing_folder_message(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar100", tmp_path / "nowhere", "test")
    message = str(info.value)
    for expected in (
        str(tmp_path / "nowhere"),
        "test, meta",
        "cifar-100-python.tar.gz",
        "download=True",
        "--download",
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


# ---------------------------------------------------------------- STL-10


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


def test_stl10_missing_files_message(tmp_path):
    make_stl10(tmp_path)
    (tmp_path / "stl10_binary" / "unlabeled_X.bin").unlink()
    with pytest.raises(DatasetError) as info:
        load_dataset("stl10", tmp_path, "unlabeled")
    message = str(info.value)
    assert "unlabeled_X.bin missing" in message and str(tmp_path) in message
    assert "--download" in message and "stl10_binary.tar.gz" in message


# ---------------------------------------------------------------- imagefolder


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


# ---------------------------------------------------------------- downloads


def test_download_file_verifies_md5(tmp_path, http_server):
    body = b"hello aligniform" * 1000
    http_server.files["/f.bin"] = body
    dest = download_file(
        f"{http_server.url}/f.bin", tmp_path / "cache" / "f.bin", md5=hashlib.md5(body).hexdigest().upper(), timeout=10
    )
    assert dest.read_bytes() == body
    assert sorted(p.name for p in dest.parent.iterdir()) == ["f.bin"]  # no temp files


def test_download_checksum_mismatch_cleans_up(tmp_path, http_server):
    http_server.files["/f.bin"] = b"tampered"
    with pytest.raises(DatasetError) as info:
        download_file(f"{http_server.url}/f.bin", tmp_path / "f.bin", md5="0" * 32, timeout=10)
    message = str(info.value)
    assert "0" * 32 in message and hashlib.md5(b"tampered").hexdigest() in message
    assert list(tmp_path.iterdir()) == []


def test_download_network_errors_explain_manual_placement(tmp_path, http_server):
    with pytest.raises(DatasetError) as info:
        download_file(f"{http_server.url}/absent.tar.gz", tmp_path / "a.tar.gz", timeout=10)
    message = str(info.value)
    assert f"{http_server.url}/absent.tar.gz" in message and "404" in message
    assert str(tmp_path / "a.tar.gz") in message and "by hand" in message
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="http"):
        download_file("ftp://example.org/x", tmp_path / "x")


def test_download_and_extract_then_skip(tmp_path, http_server):
    body = make_targz(make_stl10(tmp_path / "build").folder, tmp_path / "stl.tar.gz")
    http_server.files["/stl10_binary.tar.gz"] = body
    cache = tmp_path / "cache"
    url = f"{http_server.url}/stl10_binary.tar.gz"
    md5 = hashlib.md5(body).hexdigest()
    download_and_extract(url, cache, md5, "stl10_binary.tar.gz", timeout=10)
    assert (cache / "stl10_binary" / "test_y.bin").read_bytes() == bytes([3, 5, 10])
    assert http_server.hits["/stl10_binary.tar.gz"] == 1
    # Verified archive present: extract again without touching the network.
    download_and_extract(url, cache, md5, "stl10_binary.tar.gz", timeout=10)
    download_and_extract(url, cache, md5, "stl10_binary.tar.gz", extracted_name="stl10_binary", timeout=10)
    assert http_server.hits["/stl10_binary.tar.gz"] == 1
    # A damaged archive no longer verifies, so it is fetched again.
    (cache / "stl10_binary.tar.gz").write_bytes(b"garbage")
    download_and_extract(url, cache, md5, "stl10_binary.tar.gz", timeout=10)
    assert http_server.hits["/stl10_binary.tar.gz"] == 2
    assert (cache / "stl10_binary.tar.gz").read_bytes() == body


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


def test_extract_rejects_path_traversal_and_links(tmp_path):
    for name, member in [
        ("evil.tar.gz", tarfile.TarInfo("../escaped.txt")),
        ("link.tar.gz", tarfile.TarInfo("data/link")),
    ]:
        archive = tmp_path / name
        with tarfile.open(archive, "w:gz") as tar:
            if member.name.endswith("link"):
                member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(member)
            else:
                member.size = 2
                tar.addfile(member, io.BytesIO(b"hi"))
        out = tmp_path / f"out-{name}"
        with pytest.raises(DatasetError, match="refusing to extract"):
            extract_archive(archive, out)
        assert list(out.iterdir()) == []
    assert not (tmp_path / "escaped.txt").exists()


def test_extract_corrupt_archive(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DatasetError, match="could not extract .*cifar-10-python.tar.gz"):
        load_dataset("cifar10", tmp_path, "test")


# ---------------------------------------------------------------- mnist5k / digits


def test_mnist5k_fixed_stratified_split():
    train = load_dataset("mnist5k", split="train")
    test = load_dataset("mnist5k", split="test")
    assert train.images.shape == (4000, 1, 28, 28) and test.images.shape == (1000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and int(train.images.max()) == 255
    assert torch.bincount(train.labels).tolist() == [400] * 10
    assert torch.bincount(test.labels).tolist() == [100] * 10
    assert train.classes == [str(d) for d in range(10)] and train.name == "mnist5k"
    # Deterministic, and the two splits hold different images that together make up "all".
    again = load_dataset("mnist5k", split="test")
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)
    rows = {bytes(img.numpy()) for img in train.images}
    assert not rows & {bytes(img.numpy()) for img in test.images}
    everything = load_dataset("mnist5k", split="all")
    assert len(everything) == 5000
    assert sorted(rows | {bytes(img.numpy()) for img in test.images}) == sorted(
        {bytes(img.numpy()) for img in everything.images}
    )


def test_digits_value_range_and_split():
    ds = load_dataset("digits", split="all")
    assert ds.images.shape == (1797, 1, 8, 8) and ds.images.dtype == torch.uint8
    assert int(ds.images.min()) == 0 and int(ds.images.max()) == 255
    allowed = {round(v * 255 / 16) for v in range(17)}
    assert set(ds.images.unique().tolist()) <= allowed
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    assert (len(train), len(test)) == (1438, 359)
    assert torch.bincount(test.labels).min() >= 34
    small = load_dataset("digits", split="test", image_size=4)
    assert small.images.shape == (359, 1, 4, 4)
    with pytest.raises(ValueError, match="image_size must be a positive integer"):
        load_dataset("digits", image_size=0)


# ---------------------------------------------------------------- train_val_split


def test_train_val_split_stratified_deterministic_disjoint():
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    train, val = train_val_split(labels, 0.2, seed=3)
    assert len(val) == 20 and len(train) == 80
    assert np.bincount(labels[val]).tolist() == [10, 6, 3, 1]
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    assert train.dtype == np.int64 and not set(train) & set(val)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    again_train, again_val = train_val_split(torch.from_numpy(labels), 0.2, seed=3)
    assert np.array_equal(again_val, val) and np.array_equal(again_train, train)
    assert not np.array_equal(train_val_split(labels, 0.2, seed=4)[1], val)


def test_train_val_split_from_count():
    train, val = train_val_split(10, 0.3, seed=0)
    assert len(val) == 3 and len(train) == 7
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(10))
    assert np.array_equal(train_val_split(np.int64(10), 0.3, seed=0)[1], val)
    empty_train, empty_val = train_val_split(4, 0.0, seed=0)
    assert empty_train.tolist() == [0, 1, 2, 3] and empty_val.size == 0


@pytest.mark.parametrize(
    "args, match",
    [
        ((10, 1.0, 0), "val_fraction must be in"),
        ((10, -0.1, 0), "val_fraction must be in"),
        ((10, "0.2", 0), "val_fraction must be a number"),
        ((10, 0.2, -1), "seed must be a non-negative integer"),
        ((10, 0.2, 1.5), "seed must be a non-negative integer"),
        ((np.zeros((2, 5), int), 0.2, 0), "labels must be 1-D"),
        ((np.array([0.5, 1.0, 2.0]), 0.2, 0), "labels must be integers"),
        ((0, 0.2, 0), "at least one sample"),
        ((2, 0.9, 0), "leaves no training samples"),
        ((True, 0.2, 0), "labels_or_n must be"),
    ],
)
def test_train_val_split_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        train_val_split(*args)
