"""Replacing a run (``overwrite``) without ever losing it: the new run is built aside, then swapped in.

The new run is written into the hidden folder :data:`STAGING` inside the run
folder (the same file system, so each move is a rename). The old run stays
untouched until the new one has its first checkpoint; then :func:`commit`
writes the list of the new run's files (:data:`MANIFEST`, atomically: this is
the commit point) and moves them in one by one (:func:`move_in`), removing the
old run's other files. Whatever moment a crash hits, the next process that
locks the folder finishes the job (:func:`finish_pending`):

* before the commit point, the staging folder is discarded: the old run is
  there, byte for byte, to be resumed or replaced again;
* after it, the moves are completed: the new run is there, to be resumed.

Every step is idempotent, so a crash while finishing is finished the same way.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .._faults import fault_point
from .._io import sync_folder
from .run_folder import RUN_FILES, write_text_atomic

#: The folder (inside the run folder) a replacing run is built in until its first checkpoint.
STAGING = ".aligniform-overwrite"

#: The file in :data:`STAGING` naming the new run's files; once it exists the swap is decided.
MANIFEST = "swap.json"


def staging_folder(out: str | Path) -> Path:
    """Where a run replacing the one in ``out`` is built (see the module's docstring)."""
    return Path(out) / STAGING


def pending_checkpoint(out: str | Path) -> Path:
    """The checkpoint the run in ``out`` continues from: the new run's while a decided swap is unfinished."""
    staging = staging_folder(out)
    if (staging / MANIFEST).is_file() and (staging / "checkpoint.pt").is_file():
        return staging / "checkpoint.pt"
    return Path(out) / "checkpoint.pt"


def prepare_staging(out: str | Path) -> Path:
    """An empty staging folder in ``out`` (a leftover one is removed first); the caller holds the lock."""
    staging = staging_folder(out)
    _remove(staging)
    staging.mkdir()
    return staging


def commit(out: str | Path) -> None:
    """Decide the swap (write :data:`MANIFEST`) and move the new run's files in (the caller holds the lock)."""
    staging = staging_folder(out)
    names = [name for name in RUN_FILES if os.path.lexists(staging / name)]
    write_text_atomic(staging / MANIFEST, json.dumps(names) + "\n", point="swap")
    move_in(out)


def move_in(out: str | Path) -> None:
    """Complete a decided swap: each new file replaces the old one, old files the new run lacks go, then staging.

    Idempotent: a name still in staging has not been moved yet; a name of the
    manifest that is no longer there already was, so the file in ``out`` is new.
    """
    out = Path(out)
    staging = staging_folder(out)
    names = json.loads((staging / MANIFEST).read_text(encoding="utf-8"))
    for name in RUN_FILES:
        source, target = staging / name, out / name
        if os.path.lexists(source):
            fault_point("swap.move", target)
            if target.is_dir() and not target.is_symlink():  # a folder (tensorboard/) is not replaced by rename
                shutil.rmtree(target)
            os.replace(source, target)
        elif name not in names:
            _remove(target)  # the old run's (results.json, an old best.pt): not part of the new run
    sync_folder(out)
    _remove(staging)


def finish_pending(out: str | Path) -> str | None:
    """Finish a swap a crash interrupted (see the module's docstring); the caller holds the lock.

    Returns:
        ``"completed"`` (the new run was moved in), ``"discarded"`` (an unfinished new run was removed), or
        None when there was nothing to finish.
    """
    staging = staging_folder(out)
    if not os.path.lexists(staging):
        return None
    if (staging / MANIFEST).is_file():
        move_in(out)
        return "completed"
    _remove(staging)
    return "discarded"


def discard(out: str | Path) -> None:
    """Remove an undecided staging folder (a replacing run that failed before its first checkpoint)."""
    staging = staging_folder(out)
    if os.path.lexists(staging) and not (staging / MANIFEST).is_file():
        _remove(staging)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
