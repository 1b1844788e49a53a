"""Fake datasets in the on-disk layouts of the official CIFAR-10/100 and STL-10 releases."""

from __future__ import annotations

import pickle
import struct
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from aligniform import data

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_rows(n: int, offset: int) -> np.ndarray:
    """n flattened 3x32x32 images; row i holds (arange(3072) + offset + 7 i) mod 256."""
    base = np.arange(3 * 32 * 32)[None, :] + offset + 7 * np.arange(n)[:, None]
    return (base % 256).astype(np.uint8)


def dump_pickle(path: Path, obj: object, protocol: int = 2) -> None:
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
        dump_pickle(
            folder / f"data_batch_{b}",
            {
                b"batch_label": b"training batch",
                b"data": cifar_rows(2, offset=10 * b),
                b"labels": [b % 10, (b + 3) % 10],
                b"filenames": [b"a.png", b"b.png"],
            },
        )
    dump_pickle(folder / "test_batch", {b"data": cifar_rows(3, offset=99), b"labels": [9, 0, 4]})
    dump_pickle(
        folder / "batches.meta", {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_cases_per_batch": 2}
    )
    return folder


def make_cifar100(root: Path) -> Path:
    """str keys and protocol 5 this time, to cover pickles written by Python 3."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    dump_pickle(
        folder / "train",
        {"data": cifar_rows(4, 1), "fine_labels": [0, 42, 99, 7], "coarse_labels": [0, 1, 2, 3]},
        protocol=5,
    )
    dump_pickle(
        folder / "test", {"data": cifar_rows(2, 5), "fine_labels": [3, 98], "coarse_labels": [1, 1]}, protocol=5
    )
    dump_pickle(
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
