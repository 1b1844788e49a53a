"""argparse types for the paths a command reads: refused at once when they cannot be what the option wants.

A FIFO, socket or device given where a file is read would block the command (a FIFO until something writes
to it) or be reported as missing; a folder given where a file is read would be named "does not exist" by
loaders that look for files. Both are said here, as one line naming the option (``argument --pairs: ...``).
A path that does not exist (or a dangling link) passes: the reader names it, and some options also accept a
shipped config's name.
"""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

from .errors import path_argument


def check_not_special(path: str | os.PathLike[str]) -> None:
    """Raise ``argparse.ArgumentTypeError`` if ``path`` exists and is neither a regular file nor a folder.

    Examples:
        >>> import tempfile
        >>> fifo = Path(tempfile.mkdtemp()) / "fifo"
        >>> os.mkfifo(fifo)
        >>> check_not_special(fifo)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: .../fifo is not a regular file or folder (a FIFO, socket or device); ...
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # missing, a dangling link, a loop, a name too long: the reader says which
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise argparse.ArgumentTypeError(
            f"{path} is not a regular file or folder (a FIFO, socket or device); give a file to read"
        )


def input_path(text: str) -> Path:
    """An argparse ``type`` for a file or folder to read (or a shipped config's name): not empty, not a FIFO."""
    path = path_argument(text)
    check_not_special(path)
    return path


def input_file(text: str) -> Path:
    """An argparse ``type`` for a file to read: not empty, not a folder, not a FIFO, socket or device."""
    path = input_path(text)
    if os.path.isdir(path):  # os.path: a name too long is "not a folder" here, and the reader names it
        raise argparse.ArgumentTypeError(f"{path} is a folder, not a file; give the file to read")
    return path


def data_folder(text: str) -> str:
    """An argparse ``type`` for a dataset folder: not empty, not an existing file (a missing one is created).

    The text is returned as given: the library reads ``data_dir`` as a string.
    """
    path = path_argument(text)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{path} is not a folder; give the dataset folder (created if missing)")
    return text
