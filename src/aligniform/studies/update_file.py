"""Rewriting a user's file in place (``study summary``'s ``update``): checked first, links kept, endings kept.

The file is the user's, often under version control, so the update changes its table and nothing else:

* a **symbolic link** is followed on purpose: the file it points to is updated and the link stays a link
  (replacing the link by a regular file would silently detach it from its target);
* a file with **hard links** (link count above 1) is rewritten in place, so every name sees the new table
  (an atomic rename would give this name a new file and leave the other names with the old one); the space
  is reserved first, so a full disk fails before the file is touched;
* any other file is replaced atomically (:func:`aligniform._io.write_atomic`): a crash or a full disk leaves
  the old file or the new one, never a mix;
* the **line endings** are the file's own (CRLF stays CRLF), as the text is read and written as bytes;
* whether the file can be written (read-only, immutable, append-only, in a read-only folder) is checked by
  :func:`check_update_target` **before** the study writes anything, and no error names a temporary file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .._io import write_atomic
from ..errors import OptionError

__all__ = ["check_update_target", "read_update_text", "write_update"]


def check_update_target(path: str | os.PathLike[str]) -> Path:
    """The file ``update`` names, links followed, once it is known it can be rewritten; else raise.

    Raises:
        OptionError: the file is missing (or a dangling link), not a regular file, read-only, immutable or
            append-only, or (when it is replaced by a rename) its folder cannot be written.

    Examples:
        >>> import tempfile, pathlib
        >>> file = pathlib.Path(tempfile.mkdtemp()) / "R.md"
        >>> _ = file.write_text("text")
        >>> check_update_target(file) == file.resolve()
        True
        >>> check_update_target(file.with_name("missing.md"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        aligniform.errors.OptionError: `update` .../missing.md: no such file; give the markdown file whose ...
    """
    given = Path(path).expanduser()
    real = Path(os.path.realpath(given))
    if not real.exists():
        dangling = f" (a link to {real}, which does not exist)" if given.is_symlink() else ""
        raise OptionError(f"`update` {given}: no such file{dangling}; give the markdown file whose table to replace")
    if not real.is_file():
        raise OptionError(f"`update` {given} is not a regular file; give the markdown file whose table to replace")
    if not real.stat().st_mode & stat.S_IWUSR:  # the mode, not only os.access: root may write anything
        raise OptionError(
            f"`update` {given} is read-only; make it writable (chmod u+w {real}) to let the summary replace "
            "its table, or leave `update` out"
        )
    try:
        # Opening for writing without truncating changes nothing, and fails as the write would: an immutable
        # or append-only file (chattr +i / +a) refuses it even to root.
        os.close(os.open(real, os.O_WRONLY))
    except OSError as error:
        raise OptionError(
            f"`update` {given} cannot be written ({_reason(error)}); make it writable to let the summary "
            "replace its table, or leave `update` out"
        ) from None
    if real.stat().st_nlink == 1 and not os.access(real.parent, os.W_OK | os.X_OK):
        raise OptionError(
            f"`update` {given}: its folder {real.parent} cannot be written (permission denied, immutable or a "
            "read-only file system), and the file is replaced by a new one there; leave `update` out"
        )
    return real


def read_update_text(path: Path) -> str:
    r"""The file's text with its line endings as they are (``\r\n`` is not turned into ``\n``).

    Raises:
        OptionError: the file is not UTF-8 text.
    """
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise OptionError(f"`update` {path} is not UTF-8 text ({error.reason} at byte {error.start})") from None


def write_update(path: Path, text: str) -> None:
    r"""Write ``text`` to the file :func:`check_update_target` returned: in place when hard-linked, else atomically.

    Raises:
        OSError: writing failed (a full disk); the error names ``path``, never a temporary file.

    Examples:
        >>> import tempfile, pathlib
        >>> file = pathlib.Path(tempfile.mkdtemp()) / "R.md"
        >>> _ = file.write_bytes(b"a\r\nb\r\n")
        >>> write_update(file, "a\r\nc\r\n")
        >>> file.read_bytes()
        b'a\r\nc\r\n'
    """
    data = text.encode("utf-8")
    if path.stat().st_nlink > 1:
        _write_in_place(path, data)
    else:
        write_atomic(path, lambda stream: stream.write(data))


def _write_in_place(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY)
    try:
        reserve = getattr(os, "posix_fallocate", None)  # not on macOS or Windows
        try:
            # Reserve the space first: a full disk then fails here, before a byte of the file has changed.
            if reserve is not None:
                reserve(descriptor, 0, max(len(data), 1))
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            # EOPNOTSUPP/EINVAL: the file system cannot reserve space; write without reserving it.
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.ftruncate(descriptor, len(data))
        os.fsync(descriptor)
    except OSError as error:
        raise type(error)(error.errno, error.strerror, os.fspath(path)) from None
    finally:
        os.close(descriptor)


def _reason(error: OSError) -> str:
    if error.errno in (errno.EPERM, errno.EACCES):
        return "permission denied, or the file is immutable or append-only"
    if error.errno == errno.EROFS:
        return "a read-only file system"
    return (error.strerror or str(error)).lower()
