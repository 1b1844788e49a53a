"""Writing files atomically (checkpoints, run files, JSON) and reading JSON lines: strict JSON out (NaN as null)."""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from ._faults import fault_point
from ._numerics import is_finite_number


def write_json(path: str | Path, values: Any) -> Path:
    """Write ``values`` as indented, strict JSON, atomically; return the path.

    NaN and infinities become ``null`` (bare ``NaN`` is not JSON: strict parsers
    such as JavaScript's ``JSON.parse`` reject it), numpy scalars become Python
    numbers and tuples become lists. The text goes to a temporary file in the
    same folder, which then replaces ``path`` in one step, so a reader (or a run
    killed mid-write) never sees half a file. Parent folders are created.

    Examples:
        >>> import json, math, tempfile, pathlib
        >>> path = write_json(pathlib.Path(tempfile.mkdtemp()) / "r.json", {"acc": 0.5, "loss": math.nan})
        >>> json.loads(path.read_text())
        {'acc': 0.5, 'loss': None}
    """
    path = Path(path)
    data = (json.dumps(_strict(values), indent=2, allow_nan=False) + "\n").encode("utf-8")
    write_atomic(path, lambda stream: stream.write(data))
    return path


def json_line(record: dict) -> str:
    r"""``record`` as one line of strict JSON (NaN and infinities as null, numpy scalars as numbers) and a newline.

    The one NaN-to-null writer of JSON lines (``metrics.jsonl`` is written with it), the same conversion
    :func:`write_json` makes.

    Examples:
        >>> import math
        >>> json_line({"epoch": 1, "loss": math.nan})
        '{"epoch": 1, "loss": null}\n'
    """
    return json.dumps(_strict(record), allow_nan=False) + "\n"


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], object], point: str | None = None) -> None:
    """Write a file so that a crash at any moment leaves the old file or the new one, never a mix.

    ``write`` fills a temporary file in the same folder, which is flushed to
    disk and then renamed over ``path`` (rename is atomic on POSIX); the folder
    is synced so the rename itself survives a power cut. The temporary file is
    opened with mode ``"x"`` rather than by ``mkstemp`` (whose files are private,
    0600), so a new file gets the permissions of the user's umask like every
    other file of a run; a file that is replaced keeps its own permissions. On
    failure the temporary file is removed (a killed process leaves a hidden
    ``.NAME.*.tmp``, which the next run removes).

    Args:
        path: the file to write.
        write: writes the content into the binary stream it is given.
        point: the fault-injection point's prefix (default the file's stem: ``checkpoint``, ``best``, ...).
    """
    path = Path(path)
    point = point or path.stem
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with temporary.open("xb") as stream:
            write(stream)
            stream.flush()
            fault_point(f"{point}.write", path)
            os.fsync(stream.fileno())
        if path.exists():  # the replacement keeps the permissions the user gave the file
            os.chmod(temporary, stat.S_IMODE(path.stat().st_mode))
        fault_point(f"{point}.rename", path)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise _naming(error, temporary, path) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def _naming(error: OSError, temporary: Path, path: Path) -> OSError:
    """``error`` naming ``path``, the file being written, where it named the hidden temporary file or no file.

    The temporary file is gone by the time the error is read, so naming it (``.report.html.123.ab.tmp``)
    would only send the user looking for a file that does not exist.
    """
    if error.errno is None or (error.filename is not None and os.fspath(error.filename) != os.fspath(temporary)):
        return error
    renamed = type(error)(error.errno, error.strerror, os.fspath(path))
    renamed.__traceback__ = error.__traceback__
    return renamed


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` with :func:`write_atomic` (old file or new one, never a mix); return the path.

    Examples:
        >>> import tempfile, pathlib
        >>> path = write_bytes_atomic(pathlib.Path(tempfile.mkdtemp()) / "a.txt", b"text")
        >>> path.read_bytes()
        b'text'
    """
    path = Path(path)
    write_atomic(path, lambda stream: stream.write(data))
    return path


def sync_folder(folder: Path) -> None:
    """Make renames in ``folder`` survive a power cut (best effort: some file systems cannot sync a folder)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _strict(value: Any) -> Any:
    """``value`` with non-finite floats as None, numpy scalars as Python ones, tuples as lists."""
    if isinstance(value, float) and not is_finite_number(value):
        return None
    if isinstance(value, dict):
        return {str(key): _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    if isinstance(value, np.generic):
        return _strict(value.item())
    return value


def read_jsonl(path: str | Path) -> list[dict]:
    r"""The objects of a JSON-lines file, one per line; blank lines are skipped.

    Raises:
        ValueError: a line is not valid JSON or not a JSON object (the message names the file and line).

    Examples:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.jsonl"
        >>> _ = path.write_text('{"epoch": 1, "loss": 0.5}\n\n{"epoch": 2, "loss": NaN}\n')
        >>> read_jsonl(path)
        [{'epoch': 1, 'loss': 0.5}, {'epoch': 2, 'loss': nan}]
    """
    path = Path(path)
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}")
            records.append(record)
    return records
