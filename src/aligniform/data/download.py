"""Checksum-verified downloads and safe archive extraction.

Downloads stream into a temporary file next to the destination and are renamed
into place only after the MD5 digest matches, so an interrupted or corrupted
download never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .dataset import DatasetError

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 1 << 20


def file_md5(path: str | Path) -> str:
    """Return the MD5 hex digest of a file, read in 1 MiB chunks.

    Examples:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"abc")
        >>> file_md5(p)
        '900150983cd24fb0d6963f7d28e17f72'
    """
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _manual_instructions(url: str, dest: Path) -> str:
    return (
        f"to place the file by hand, download {url} on a machine with internet "
        f"access and copy it to {dest} (or extract it inside {dest.parent})"
    )


def download_file(
    url: str,
    dest: str | Path,
    md5: str | None = None,
    timeout: float = 60.0,
    progress: bool = False,
) -> Path:
    """Download ``url`` to ``dest``, verifying its MD5 digest when given.

    The body is streamed into a temporary file in ``dest``'s folder (created
    if needed) and atomically renamed to ``dest`` once complete and verified.

    Args:
        url: ``http://`` or ``https://`` address.
        dest: Final file path.
        md5: Expected MD5 hex digest (case-insensitive), or ``None`` to skip
            the check.
        timeout: Socket timeout in seconds for connecting and for each read.
        progress: Show a ``tqdm`` progress bar on stderr.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        DatasetError: the download failed (the message names the URL, the
            error, and how to place the file by hand) or the checksum did not
            match (the message gives both digests; the partial file is deleted).
        ValueError: ``url`` is not http(s) or ``timeout`` is not positive.

    Examples:
        >>> download_file("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        ...               "/tmp/data/cifar-10-python.tar.gz",
        ...               md5="c58f30108f718f92721af3b95e74349a")  # doctest: +SKIP
        PosixPath('/tmp/data/cifar-10-python.tar.gz')
    """
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise ValueError(f"url must be an http:// or https:// address, got {url!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False)
    tmp_path = Path(handle.name)
    digest = hashlib.md5()
    try:
        try:
            logger.info("downloading %s to %s", url, dest)
            with handle, urllib.request.urlopen(url, timeout=timeout) as response:
                total = response.headers.get("Content-Length")
                bar = _progress_bar(progress, total, dest.name)
                try:
                    while block := response.read(_CHUNK_BYTES):
                        handle.write(block)
                        digest.update(block)
                        if bar is not None:
                            bar.update(len(block))
                finally:
                    if bar is not None:
                        bar.close()
                if total is not None and total.isdigit() and handle.tell() != int(total):
                    raise OSError(f"connection closed after {handle.tell()} of {total} bytes")
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            if isinstance(err, urllib.error.HTTPError):
                err.close()  # an HTTPError keeps the response's socket open
            raise DatasetError(
                f"could not download {url}: {err}. Check the network connection and "
                f"retry; or, {_manual_instructions(url, dest)}."
            ) from err
        actual = digest.hexdigest()
        if md5 is not None and actual != md5.lower():
            raise DatasetError(
                f"checksum mismatch for {url}: expected md5 {md5.lower()}, got {actual}; "
                f"the downloaded file was deleted. Retry the download; if it keeps "
                f"failing, {_manual_instructions(url, dest)}."
            )
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)
    return dest


def _progress_bar(enabled: bool, total: str | None, label: str):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # progress is cosmetic; never fail a download over it
        return None
    size = int(total) if total is not None and total.isdigit() else None
    return tqdm(total=size, unit="B", unit_scale=True, desc=label)


def _check_member(member: tarfile.TarInfo, root: Path) -> None:
    """Reject archive members that could write outside ``root`` or are not plain."""
    name = member.name
    target = (root / name).resolve()
    if (
        name.startswith(("/", "\\"))
        or os.path.isabs(name)
        or ".." in Path(name).parts
        or not (target == root or root in target.parents)
    ):
        raise DatasetError(f"refusing to extract {name!r}: it points outside {root}")
    if not (member.isfile() or member.isdir()):
        raise DatasetError(
            f"refusing to extract {name!r}: only regular files and folders are allowed "
            f"(links and device files could escape the extraction folder)"
        )


def extract_archive(archive: str | Path, dest_dir: str | Path) -> list[Path]:
    """Safely extract a ``.tar``/``.tar.gz``/``.tgz`` archive into ``dest_dir``.

    Members with absolute paths, ``..`` components, links or device files are
    rejected before anything is written. Extraction happens in a temporary
    folder inside ``dest_dir``; its top-level entries are then moved into
    place, so an interrupted extraction never leaves a half-written dataset
    folder. Top-level entries that already exist in ``dest_dir`` are kept as
    they are.

    Args:
        archive: Path of the archive.
        dest_dir: Folder to extract into (created if needed).

    Returns:
        The top-level paths in ``dest_dir`` that came from the archive.

    Raises:
        DatasetError: the archive is unreadable or contains an unsafe member.

    Examples:
        >>> extract_archive("data/cifar-10-python.tar.gz", "data")  # doctest: +SKIP
        [PosixPath('data/cifar-10-batches-py')]
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest_dir, prefix=".extract-"))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                root = staging.resolve()
                for member in members:
                    _check_member(member, root)
                # The "data" filter (Python >= 3.12 and recent patch releases)
                # repeats the checks above inside tarfile itself.
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(staging, members=members, filter="data")
                else:  # pragma: no cover - old interpreters only
                    tar.extractall(staging, members=members)
        except (tarfile.TarError, OSError, EOFError) as err:
            raise DatasetError(
                f"could not extract {archive}: {err}. The archive is probably "
                f"truncated or corrupt; delete it and download it again."
            ) from err
        extracted = []
        for entry in sorted(staging.iterdir()):
            target = dest_dir / entry.name
            if not target.exists():
                os.replace(entry, target)
            extracted.append(target)
        return extracted
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_and_extract(
    url: str,
    data_dir: str | Path,
    md5: str | None,
    archive_name: str,
    *,
    extracted_name: str | None = None,
    timeout: float = 60.0,
    progress: bool = False,
) -> Path:
    """Make sure ``data_dir`` holds the extracted contents of the archive at ``url``.

    Network access is skipped when ``data_dir/extracted_name`` already exists,
    or when ``data_dir/archive_name`` is already present and its MD5 matches
    (a present archive with a wrong digest is downloaded again).

    Args:
        url: Address of the archive.
        data_dir: Cache folder; created if needed.
        md5: Expected MD5 hex digest of the archive, or ``None`` to trust it.
        archive_name: File name to store the archive under in ``data_dir``.
        extracted_name: Folder the archive extracts to; when it exists nothing
            is downloaded or extracted.
        timeout: Socket timeout in seconds.
        progress: Show a progress bar while downloading.

    Returns:
        ``data_dir`` as a :class:`~pathlib.Path`.

    Raises:
        DatasetError: download, checksum or extraction failed.

    Examples:
        >>> download_and_extract(
        ...     "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "data",
        ...     "c58f30108f718f92721af3b95e74349a", "cifar-10-python.tar.gz",
        ...     extracted_name="cifar-10-batches-py")  # doctest: +SKIP
        PosixPath('data')
    """
    if not archive_name or Path(archive_name).name != archive_name:
        raise ValueError(f"archive_name must be a plain file name, got {archive_name!r}")
    data_dir = Path(data_dir)
    if extracted_name is not None and (data_dir / extracted_name).is_dir():
        logger.info("%s already present; not downloading", data_dir / extracted_name)
        return data_dir
    archive = data_dir / archive_name
    if archive.is_file() and (md5 is None or file_md5(archive) == md5.lower()):
        logger.info("verified archive %s already present; not downloading", archive)
    else:
        if archive.is_file():
            logger.warning("%s does not match md5 %s; downloading it again", archive, md5)
        download_file(url, archive, md5=md5, timeout=timeout, progress=progress)
    extract_archive(archive, data_dir)
    return data_dir
