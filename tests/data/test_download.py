"""aligniform.data.download: verified downloads from a loopback server and safe archive extraction."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from aligniform.data import DatasetError, download_and_extract, download_file, extract_archive, load_dataset
from tests.data.fakes import make_stl10, make_targz


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
