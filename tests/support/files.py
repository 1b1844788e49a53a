"""Snapshots of a folder, to assert that a refused command left every file in it as it was."""

import hashlib
import os
import stat
from pathlib import Path

# The fault campaign checks the same contract on its workspace: one definition of "unchanged" for both
# (tools/ must not import tests/, so the tests take the campaign's).
from tools.fault_campaign import snapshot as _entries


def snapshot(root):
    """Every entry under ``root`` as ``{relative path: (content, mode bits)}``; None when ``root`` does not exist.

    The content is a file's SHA-256, ``dir``, ``special`` (a FIFO, a socket) or, for a symbolic link,
    ``link -> TARGET``; a link that resolves to a regular file also carries that file's SHA-256 and mode bits, so
    writing through a link changes the snapshot even when the target lies outside ``root``. Links to folders are
    not followed.
    """
    root = Path(root)
    if not os.path.lexists(root):
        return None
    entries = _entries(root)
    for name, (content, mode) in entries.items():
        if content.startswith("link -> "):
            entries[name] = (content + _resolved(root / name), mode)
    return entries


def _resolved(link):
    """`` = SHA-256 MODE`` of the regular file ``link`` resolves to; empty when it is dangling, a loop or no file."""
    try:
        status = os.stat(link)
    except OSError:
        return ""
    if not stat.S_ISREG(status.st_mode):
        return ""
    try:
        digest = hashlib.sha256(Path(link).read_bytes()).hexdigest()
    except OSError:  # unreadable: its mode still tells a change of permissions
        digest = "unreadable"
    return f" = {digest} {stat.S_IMODE(status.st_mode):o}"
