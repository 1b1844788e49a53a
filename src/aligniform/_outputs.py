"""Where a command may write: checked before any work, so an output never costs a user a file.

Every command that writes (``report``, ``eval --json``, ``analyze --figures``, studies, sweeps, the demo)
checks its output paths with :func:`check_output_path` before it computes anything. Besides what would make
the write fail (a folder where a file is meant, a read-only location), the check refuses two kinds of path
that would succeed and destroy something:

* a file a run folder owns (:data:`RUN_FOLDER_FILES`: its checkpoints, logs, config and results), so
  ``report R -o R/checkpoint.pt`` cannot turn a checkpoint into HTML;
* a file the command itself reads (its ``inputs``), so ``eval R/checkpoint.pt --json R/checkpoint.pt``
  cannot either.

Paths are compared after following symbolic links and by file identity, so a link or a hard link to a
protected file is refused as the file itself is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .errors import OptionError

__all__ = ["RUN_FOLDER_FILES", "check_output_path", "is_run_folder_file"]

#: The files (and folder) whose presence means a folder holds a run, in the order an overwrite replaces them.
#: Defined here, a foundation module, so that every writer can check its outputs without the training code
#: (``aligniform.train.run_folder`` uses these names).
RUN_FILES: tuple[str, ...] = (
    "checkpoint.pt",
    "best.pt",
    "results.json",
    "metrics.jsonl",
    "history.yaml",
    "tensorboard",
    "config.yaml",
)

#: The run's lock file (its content names the holder: pid, host, start time).
LOCK_FILE = ".aligniform.lock"

#: Everything a run owns in its folder: its files and its lock.
RUN_FOLDER_FILES: tuple[str, ...] = (*RUN_FILES, LOCK_FILE)

PathLike = str | os.PathLike[str]


def is_run_folder_file(path: PathLike) -> bool:
    """Whether ``path`` (or the file a link there points to) is one of the files its run folder owns.

    A name of :data:`RUN_FOLDER_FILES` counts only in a folder that holds a run (one of those names is
    present), so a ``config.yaml`` of another program elsewhere is not protected by this rule.

    Examples:
        >>> import tempfile, pathlib
        >>> run = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (run / "metrics.jsonl").write_text("")
        >>> is_run_folder_file(run / "checkpoint.pt"), is_run_folder_file(run / "report.html")
        (True, False)
    """
    given = Path(path).expanduser()
    for candidate in {given.absolute(), Path(os.path.realpath(given))}:
        if candidate.name in RUN_FOLDER_FILES and _holds_run(candidate.parent):
            return True
    return False


def _holds_run(folder: Path) -> bool:
    return any(os.path.lexists(folder / name) for name in RUN_FOLDER_FILES)


def _same_file(output: Path, source: Path) -> bool:
    """Whether writing ``output`` would replace ``source``: the same path after links, or the same inode."""
    if os.path.realpath(output) == os.path.realpath(source):
        return True
    try:
        return output.exists() and source.exists() and os.path.samefile(output, source)
    except OSError:  # unreadable: the write itself will report it
        return False


def _check_spares(file: Path, name: str, inputs: list[Path]) -> None:
    """Raise unless writing ``file`` leaves every run file and every input as it is."""
    if is_run_folder_file(file):
        real = Path(os.path.realpath(file))
        raise OptionError(
            f"{name} {file} would replace {real.name}, a file of the run in {real.parent}; "
            "choose another file (a run's own files are never overwritten)"
        )
    for source in inputs:
        if _same_file(file, source):
            raise OptionError(
                f"{name} {file} is {source}, a file this command reads; choose another file (an input is never "
                "overwritten)"
            )


def check_output_path(
    path: PathLike,
    name: str,
    *,
    folder: bool = False,
    inputs: Iterable[PathLike] = (),
    files: Iterable[str] = (),
) -> Path:
    """Return ``path`` (``~`` expanded) if a file, or with ``folder=True`` a folder, can be written there.

    A symbolic link is followed: the path returned is what it points to, so that writing there keeps the link
    (a link to nothing is refused). Write to the path returned.

    Checks, without creating anything, what would make writing fail after a
    long computation: an empty path, a folder where a file is meant (or a file
    where a folder is meant), a path under a file, and a location this process
    may not write to. Missing folders are fine: the writer creates them. Then it
    checks what writing would destroy: a file a run folder owns
    (:data:`RUN_FOLDER_FILES`) or one of ``inputs``, the files the command reads,
    also through a symbolic or hard link.

    Args:
        path: the file or folder to be written.
        name: the option as the error message names it: its field name in backticks (``"`out`"``, which each
            front end spells its own way, see :mod:`aligniform.errors`), or a front end's own spelling.
        folder: whether ``path`` is a folder to write files into.
        inputs: the files the command reads; none of them may be written.
        files: with ``folder=True``, the names of the files to be written into it, checked as ``path`` is.

    Raises:
        OptionError: naming ``name``, the path and what to do instead (a ``ValueError``).

    Examples:
        >>> import tempfile
        >>> check_output_path(tempfile.gettempdir(), "-o")
        Traceback (most recent call last):
        ...
        aligniform.errors.OptionError: -o ... is a folder, not a file; give the path of the file to write
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise OptionError(f"{name} must be a non-empty path, got {path!r}")
    target = Path(path).expanduser()
    kind = "folder" if folder else "file"
    if target.is_symlink():
        pointed = Path(os.path.realpath(target))
        if not pointed.exists():
            raise OptionError(
                f"{name} {target} is a symbolic link to {pointed}, which does not exist; give the {kind} itself, "
                "or create what the link points to"
            )
        # Written as a shell's `>` writes: into what the link points to, so the link stays a link.
        target = pointed
    if target.is_dir() and not folder:
        raise OptionError(f"{name} {target} is a folder, not a file; give the path of the file to write")
    if target.exists() and folder and not target.is_dir():
        raise OptionError(f"{name} {target} is a file, not a folder; give a folder (it is created if missing)")
    if target.exists() and not os.access(target, os.W_OK):
        raise OptionError(f"{name} {target} is not writable (permission denied or a read-only file system)")
    ancestor = target.parent if not (folder and target.is_dir()) else target
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OptionError(
            f"{name} {target} lies under {ancestor}, which is a file, not a folder; choose another {kind}"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OptionError(
            f"{name} {target}: cannot write in {ancestor} (permission denied or a read-only file system); "
            f"choose a {kind} you can write to"
        )
    sources = [Path(source).expanduser() for source in inputs]
    # A folder output may not be a run's own entry either (its tensorboard/, or a name a run's file has).
    for file in [target, *(target / file for file in files)] if folder else [target]:
        _check_spares(file, name, sources)
    return target
