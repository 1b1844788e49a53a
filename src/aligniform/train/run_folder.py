"""The run folder: which files make a run, who may write them, how they are written, what ``resume`` may change.

A run folder holds someone's hours of training, so it is created, continued or
replaced only on purpose (:func:`check_folder`), by one process at a time
(:class:`~aligniform.train.lifecycle.RunLock`), with files that are replaced whole (:func:`write_text_atomic`)
and a failed write raised as a :class:`RunFolderWriteError` naming the file and
how to go on (:func:`writing`; the command line puts the operating system's
error into advice). ``resume`` may change only the options in
:data:`RESUMABLE_OPTIONS` (:func:`resume_changes`); every change is recorded in
the run's history (:func:`history_event`, ``history.yaml``). Opening, resuming
and writing a run's files in order is :class:`aligniform.train.lifecycle.RunFolder`.
The contract is written out in ``docs/runs.md``.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml

from .._io import write_atomic
from .._outputs import LOCK_FILE, RUN_FILES  # re-exported: one list of a run's files, shared with every writer
from ..config import TrainConfig
from .checkpoint import CheckpointError, check_state, load_checkpoint

#: Options ``resume`` may change: none of them changes what the finished epochs trained. ``epochs`` may only
#: grow (never below the epochs done); ``out`` changes when the folder was moved.
RESUMABLE_OPTIONS = ("epochs", "progress", "device", "data_dir", "download", "out", "validate_every")

_TEMPORARY = re.compile(r"^\.(" + "|".join(re.escape(name) for name in RUN_FILES) + r")\.\d+\.[0-9a-f]+\.tmp$")


class RunFolderError(ValueError):
    """A run folder cannot be used as asked (it holds a run, is locked, is no folder); the message says why."""


#: How to go on after a failed write, once its cause is fixed (options named by field, see aligniform.errors).
RESUME_HINT = "rerun the same command with `resume` (the last finished epoch is kept)"


class RunFolderWriteError(OSError):
    """A file of the run folder could not be written.

    The operating system's error (``errno``, ``strerror``) stays as it was, ``filename`` names the file, and
    :attr:`hint` says how to go on once the cause is fixed; turning the ``errno`` into advice (free some space,
    make the folder writable) is the front end's part (``aligniform.cli.errors.describe_os_error``).

    Examples:
        >>> import errno
        >>> str(RunFolderWriteError(OSError(errno.ENOSPC, "No space left on device"), "runs/a/checkpoint.pt"))
        'cannot write runs/a/checkpoint.pt: No space left on device; fix that, then rerun the same command with \
`resume` (the last finished epoch is kept)'
    """

    def __init__(self, error: OSError, path: str | Path, hint: str = RESUME_HINT) -> None:
        where = error.filename if isinstance(error.filename, str) and error.filename else str(path)
        super().__init__(error.errno, error.strerror or str(error) or type(error).__name__, where)
        self.hint = hint

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}; fix that, then {self.hint}"


class ResultsNotSaved(RunFolderWriteError):
    """The run was evaluated but ``results.json`` could not be written; ``results`` holds what was computed."""

    def __init__(self, error: OSError, path: str | Path, results: dict[str, Any], hint: str = RESUME_HINT) -> None:
        super().__init__(error, path, hint)
        self.results = results


# ---------------------------------------------------------------------------------------------- checks


def check_out(out: str | Path) -> Path:
    """``out`` as a path, if it can be a run folder: not empty, not a file, not under a file.

    Raises:
        RunFolderError: it cannot.

    Examples:
        >>> check_out("runs/a")
        PosixPath('runs/a')
        >>> check_out("")
        Traceback (most recent call last):
        ...
        aligniform.train.run_folder.RunFolderError: `out` is empty: give the run's folder, e.g. `out` runs/a
    """
    if not str(out).strip():
        raise RunFolderError("`out` is empty: give the run's folder, e.g. `out` runs/a")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"`out` {path} is a file, not a folder; choose another `out`")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunFolderError(f"`out` {path} lies under the file {parent}; choose another `out`")
            break
    return path


def existing_run_files(out: str | Path) -> list[str]:
    """The names of :data:`RUN_FILES` present in ``out`` (empty: the folder holds no run)."""
    folder = Path(out)
    return [name for name in RUN_FILES if (folder / name).exists()]


def check_folder(out: str | Path, resume: bool = False, overwrite: bool = False) -> Path:
    """Whether a run may be started (or continued, or replaced) in ``out``; cheap, reads and writes nothing big.

    A folder holding a run (any of :data:`RUN_FILES`) is used only with
    ``resume`` (continue it) or ``overwrite`` (replace it).

    Returns:
        The folder.

    Raises:
        RunFolderError: ``out`` is no possible folder, holds a run and neither flag was given, both were given,
            or it cannot be written.
        CheckpointError: ``resume`` and there is no run to resume.
    """
    folder = check_out(out)
    if resume and overwrite:
        raise RunFolderError("`resume` continues the run in `out` and `overwrite` replaces it: give only one")
    found = existing_run_files(folder)
    if found and not (resume or overwrite):
        raise RunFolderError(
            f"{folder} already holds a run ({', '.join(found)}); continue it with `resume`, replace it with "
            f"`overwrite`, or choose another `out`"
        )
    linked = [name for name in (*RUN_FILES, LOCK_FILE) if (folder / name).is_symlink()]
    if linked:
        raise RunFolderError(
            f"{folder / linked[0]} is a symbolic link; aligniform writes a run's files only in the run folder "
            f"itself, never through a link: replace the link by the file it points to, or choose another `out`"
        )
    if resume and not (folder / "checkpoint.pt").is_file():
        finished = [name for name in ("best.pt", "results.json", "metrics.jsonl") if _holds_something(folder / name)]
        if finished:
            # Starting over would replace what these files hold with a new epoch 1.
            raise CheckpointError(
                f"checkpoint {folder / 'checkpoint.pt'} is missing but the run has finished epochs "
                f"({', '.join(finished)}); `resume` cannot continue it. "
                + (
                    "Copy best.pt to checkpoint.pt to resume from the best epoch, or replace the run with `overwrite`"
                    if "best.pt" in finished
                    else "Replace the run with `overwrite`"
                )
            )
        if not (folder / "config.yaml").is_file():
            raise CheckpointError(
                f"checkpoint {folder / 'checkpoint.pt'} does not exist: there is no run to resume in {folder}; "
                f"start it without `resume`"
            )
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunFolderError(
            f"cannot write in {existing} (permission denied); make it writable or choose another `out`"
        )
    return folder


def _holds_something(path: Path) -> bool:
    """Whether ``path`` is a non-empty file (an empty metrics.jsonl records no epoch)."""
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


def stored_run(out: str | Path) -> tuple[TrainConfig, int]:
    """The configuration of the run in ``out`` and its finished epochs.

    The configuration is the checkpoint's, else (no epoch finished yet) the
    run's ``config.yaml``.

    Raises:
        CheckpointError: there is no run to resume, or its checkpoint cannot be read.
        ConfigError: the stored configuration is invalid.
    """
    folder = Path(out)
    if (folder / "checkpoint.pt").is_file():
        state = load_checkpoint(folder / "checkpoint.pt")
        check_state(state, folder / "checkpoint.pt")
        return TrainConfig.from_dict(state["config"]), int(state["epoch"])
    if (folder / "config.yaml").is_file():
        return TrainConfig.from_yaml(folder / "config.yaml"), 0
    raise CheckpointError(
        f"checkpoint {folder / 'checkpoint.pt'} does not exist: there is no run to resume in {folder}; "
        f"start it without `resume`"
    )


def stored_config(out: str | Path) -> TrainConfig:
    """The configuration of the run in ``out`` (see :func:`stored_run`)."""
    return stored_run(out)[0]


def check_resume(config: TrainConfig) -> dict[str, dict[str, Any]]:
    """The changes resuming the run in ``config.out`` with ``config`` makes, if all are allowed (see below).

    Raises:
        RunFolderError: see :func:`resume_changes`.
        CheckpointError: see :func:`stored_run`.
    """
    saved, done = stored_run(config.out)
    return resume_changes(saved, config, done)


def resume_changes(saved: TrainConfig, requested: TrainConfig, epochs_done: int) -> dict[str, dict[str, Any]]:
    """The options ``requested`` changes in a run trained with ``saved``, if ``resume`` may change them all.

    Returns:
        ``{option: {"old": value, "new": value}}`` for each changed option of :data:`RESUMABLE_OPTIONS`.

    Raises:
        RunFolderError: another option differs (named with its old and new value), or ``epochs`` is below
            ``epochs_done``.

    Examples:
        >>> from aligniform.config import TrainConfig
        >>> resume_changes(TrainConfig(epochs=2), TrainConfig(epochs=4, device="cpu"), epochs_done=2)
        {'epochs': {'old': 2, 'new': 4}, 'device': {'old': 'auto', 'new': 'cpu'}}
        >>> resume_changes(TrainConfig(lr=0.1), TrainConfig(lr=5.0), epochs_done=1)
        Traceback (most recent call last):
        ...
        aligniform.train.run_folder.RunFolderError: `resume` cannot change lr: the run used 0.1, this command asks \
for 5.0; drop that option to continue the run, or start a new one (another `out`, or `overwrite`)
    """
    changes = {}
    for name in TrainConfig.option_names():
        old, new = getattr(saved, name), getattr(requested, name)
        if old == new:
            continue
        if name not in RESUMABLE_OPTIONS:
            raise RunFolderError(
                f"`resume` cannot change {name}: the run used {old!r}, this command asks for {new!r}; drop that "
                f"option to continue the run, or start a new one (another `out`, or `overwrite`)"
            )
        if name == "epochs" and new < epochs_done:
            raise RunFolderError(
                f"`resume` cannot set epochs to {new}: the run has already trained {epochs_done} epochs "
                f"(it used {old}); give `epochs` {epochs_done} or more"
            )
        changes[name] = {"old": old, "new": new}
    return changes


# ---------------------------------------------------------------------------------------------- writing


@contextlib.contextmanager
def writing(path: str | Path, hint: str = RESUME_HINT) -> Iterator[None]:
    """Raise an :class:`OSError` from inside as a :class:`RunFolderWriteError` naming the file and ``hint``."""
    try:
        yield
    except RunFolderWriteError:
        raise
    except OSError as error:
        raise RunFolderWriteError(error, path, hint) from None


def write_text_atomic(path: str | Path, text: str, point: str | None = None) -> None:
    r"""Replace the text file ``path`` whole (see :func:`~aligniform._io.write_atomic`).

    Examples:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
        >>> write_text_atomic(path, "hello\n")
        >>> path.read_text()
        'hello\n'
    """
    data = text.encode("utf-8")

    def write(stream: IO[bytes]) -> None:
        stream.write(data)

    write_atomic(path, write, point)


def remove_stale_temporaries(out: str | Path) -> list[str]:
    """Remove the temporary files a killed writer left in ``out`` (``.checkpoint.pt.PID.HEX.tmp``, ...)."""
    removed = []
    for path in Path(out).iterdir():
        if _TEMPORARY.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


# ---------------------------------------------------------------------------------------------- history


def history_event(event: str, epochs_done: int, changes: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One entry of a run's history: what happened, when, where, and the options it changed from which epoch.

    Examples:
        >>> entry = history_event("resume", 3, {"epochs": {"old": 3, "new": 5}})
        >>> entry["event"], entry["epochs_done"], entry["from_epoch"], entry["changes"]
        ('resume', 3, 4, {'epochs': {'old': 3, 'new': 5}})
    """
    return {
        "event": event,
        "epochs_done": epochs_done,
        "from_epoch": epochs_done + 1,
        "time": timestamp(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "changes": changes or {},
    }


def write_history(out: str | Path, history: list[dict[str, Any]]) -> None:
    """Write the run's history as ``history.yaml`` (the checkpoint holds the same list)."""
    write_text_atomic(Path(out) / "history.yaml", yaml.safe_dump(history, sort_keys=False), point="history")


def timestamp() -> str:
    """The local time now, ISO 8601 with the UTC offset, to the second (the history's and the lock's times)."""
    return datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")
