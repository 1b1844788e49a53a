"""A run folder's lifecycle: check and lock it, start, resume or replace the run, repair it, write each epoch.

:class:`RunFolder` is what the :class:`~aligniform.train.Trainer` trains into.
Its order of writes is the crash-recovery contract of ``docs/runs.md``: the
checkpoint (which holds the config, the history and every epoch's metrics) is
written first, so ``metrics.jsonl`` and ``best.pt`` are never ahead of it and a
resume brings them back up to it whatever moment a crash hit.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import IO, Any, TypeVar

from .._faults import fault_point
from ..config import ConfigError, TrainConfig
from ..distributed import DistributedContext, broadcast_object
from .checkpoint import CheckpointError, ModelInfo, check_state, load_checkpoint, read_model_info, save_atomic
from .overwrite import commit, discard, finish_pending, pending_checkpoint, prepare_staging
from .run_folder import (
    LOCK_FILE,
    RESUME_HINT,
    RunFolderError,
    check_folder,
    existing_run_files,
    history_event,
    remove_stale_temporaries,
    resume_changes,
    timestamp,
    write_history,
    write_text_atomic,
    writing,
)
from .run_log import RunLog, metrics_differ, recover_metrics

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the folder is then not protected against a second process
    fcntl = None  # type: ignore[assignment]


class RunFolder:
    """The run folder ``config.out`` as one run writes it: opened once (:meth:`open`), one write per epoch, closed.

    While open it holds the folder's :class:`RunLock`,
    the run's :attr:`history` and :attr:`metrics` (the records the checkpoint
    holds) and the :class:`~aligniform.train.run_log.RunLog`. Only one process
    (rank 0 under torchrun) opens it.

    Examples:
        >>> from aligniform.config import TrainConfig
        >>> folder = RunFolder(TrainConfig(out="/tmp/aligniform-doc"))
        >>> folder.path, folder.checkpoint.name
        (PosixPath('/tmp/aligniform-doc'), 'checkpoint.pt')
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.path = Path(config.out)
        self.checkpoint = self.path / "checkpoint.pt"
        self.metrics: list[dict] = []  # every epoch's record, also kept in the checkpoint
        self.history: list[dict] = []  # starts and resumes with the options they changed
        self.log: RunLog | None = None
        self.lock: RunLock | None = None
        self.out = self.path  # where the run lives; self.path differs while an overwrite is built aside
        self._staging: Path | None = None

    def open(self, resume: bool, overwrite: bool, model_info: ModelInfo, processes: int) -> dict | None:
        """Check, lock and prepare the folder; return the checkpoint state to continue from (None: epoch 0).

        A folder that holds a run is used only on purpose: ``resume`` continues
        it (changing only the options
        :data:`~aligniform.train.run_folder.RESUMABLE_OPTIONS`, each recorded in
        the history; the checkpoint must be of ``model_info``, written by
        ``processes`` processes), ``overwrite`` replaces it. Every check runs
        before anything is written, so a refused call leaves the folder as it
        was. The lock is held until :meth:`close` (or the end of the process).

        Raises:
            RunFolderError: the folder cannot be used as asked or is locked by another process.
            RunFolderWriteError: a write failed (it names the file).
            CheckpointError: ``resume`` and the checkpoint is missing or unreadable.
        """
        out = check_folder(self.config.out, resume, overwrite)
        state, changes = self._resume_state(model_info, processes) if resume else (None, {})
        seen = _identity(pending_checkpoint(out))
        # Everything is checked: from here on the folder is written.
        with writing(out):
            out.mkdir(parents=True, exist_ok=True)
        self.lock = (self.lock or RunLock(out)).acquire()  # a second open() keeps the lock it holds
        try:
            with writing(out):
                finish_pending(out)  # an overwrite a crash interrupted: undone before its commit, else completed
            check_folder(out, resume, overwrite)  # another process may have written it before we got the lock
            if resume and _identity(self.checkpoint) != seen:
                state, changes = self._resume_state(model_info, processes)
            with writing(out):
                remove_stale_temporaries(out)
                replaced = existing_run_files(out) if overwrite else []
                if replaced:  # the old run stays whole until the new one has its first checkpoint
                    self._staging = prepare_staging(out)
                    self._set_path(self._staging)
            self._start_record(state, changes, replaced)
        except BaseException:
            self._discard_staging()
            self.lock.release()
            self.lock = None
            raise
        return state

    @property
    def hint(self) -> str:
        """How to go on after a failed write: while an overwrite is built aside, the old run is still there."""
        if self._staging is not None:
            return "rerun the same command (the old run is kept until the new one has finished an epoch)"
        return RESUME_HINT

    def _set_path(self, path: Path) -> None:
        self.path = path
        self.checkpoint = path / "checkpoint.pt"
        if self.log is not None:
            self.log.path = path / "metrics.jsonl"

    def _swap_in(self) -> None:
        """Replace the old run by the new one, built aside until now (see :mod:`aligniform.train.overwrite`)."""
        with writing(self.out, self.hint):
            commit(self.out)
        self._staging = None
        self._set_path(self.out)

    def _discard_staging(self) -> None:
        """Drop a replacing run that failed before its first checkpoint: the old run stays as it was."""
        if self._staging is not None:
            with contextlib.suppress(OSError):
                discard(self.out)
            self._staging = None
            self._set_path(self.out)

    def _resume_state(self, model_info: ModelInfo, processes: int) -> tuple[dict | None, dict]:
        """The checkpoint to continue from (None when no epoch finished) and the options this call changes.

        Raises:
            RunFolderError: an option may not change on resume, or the checkpoint is of another model.
        """
        checkpoint = pending_checkpoint(self.out)
        if not checkpoint.is_file():  # started, but no epoch finished: config.yaml is all there is
            return None, resume_changes(TrainConfig.from_yaml(self.out / "config.yaml"), self.config, 0)
        state = load_checkpoint(checkpoint, map_location="cpu")
        check_state(state, checkpoint)
        try:
            saved = TrainConfig.from_dict(state["config"])
        except (KeyError, ConfigError) as error:
            raise CheckpointError(f"checkpoint {checkpoint} holds no usable configuration ({error})") from None
        changes = resume_changes(saved, self.config, int(state["epoch"]))
        check_processes(state, processes)
        if "model_info" in state:
            stored = read_model_info(state)
            differing = [
                f"{name} {getattr(stored, name)!r} -> {getattr(model_info, name)!r}"
                for name in (field.name for field in fields(ModelInfo))
                if getattr(stored, name) != getattr(model_info, name)
            ]
            if differing:
                raise RunFolderError(
                    f"checkpoint {checkpoint} holds another model than this command builds ({', '.join(differing)}); "
                    f"resume with the data the run was trained on"
                )
        return state, changes

    def _start_record(self, state: dict | None, changes: dict, replaced: list[str]) -> None:
        """Write the run's config and history and bring the files behind the checkpoint up to it (locked).

        config.yaml comes first: a folder with anything of a run in it can then be resumed.
        """
        out, metrics = self.path, self.path / "metrics.jsonl"
        if state is None:
            self.metrics, self.history = [], [history_event("start", 0, changes)]
            if replaced:
                self.history[0]["replaced"] = replaced
            repairs: list[str] = []
        else:
            done = int(state["epoch"])
            if "metrics" in state:
                self.metrics = list(state["metrics"])
            else:  # a checkpoint written before the metrics were kept in it
                with writing(metrics, self.hint):
                    self.metrics = recover_metrics(metrics, done)
            event = history_event("resume", done, changes)
            repairs = [
                name
                for name, stale in (
                    ("metrics.jsonl", metrics_differ(metrics, self.metrics)),
                    ("best.pt", _best_stale(out, state)),
                )
                if stale
            ]
            if repairs:
                event["repaired"] = repairs
            self.history = [*state.get("history", []), event]
            # The resume and what it changed belong to the run from now on, even before an epoch ends.
            state.update(config=self.config.to_dict(), metrics=self.metrics, history=self.history)
            with writing(self.checkpoint, self.hint):
                save_atomic(state, self.checkpoint)
        with writing(out / "config.yaml", self.hint):
            write_text_atomic(out / "config.yaml", self.config.to_yaml(), point="config")
        with writing(out / "history.yaml", self.hint):
            write_history(out, self.history)
        with writing(out / "tensorboard", self.hint):
            self.log = RunLog(out)
        with writing(metrics, self.hint):
            self.log.rewrite(self.metrics)
        if state is not None and "best.pt" in repairs:
            with writing(out / "best.pt", self.hint):
                save_atomic(state, out / "best.pt")

    def write_epoch(self, state: dict[str, Any], record: dict[str, Any], improved: bool) -> None:
        """Record a finished epoch: the checkpoint ``state``, ``best.pt`` if ``improved``, ``record``'s line.

        The checkpoint, which holds every epoch's metrics, is written first: best.pt and metrics.jsonl are never
        ahead of it, and a resume brings them up to it whatever moment a crash hit. metrics.jsonl is fsynced only
        with the run's last epoch (see :meth:`~aligniform.train.run_log.RunLog.write`).
        """
        if self.log is None:
            raise RuntimeError("the run folder is not open; call open() first")
        with writing(self.checkpoint, self.hint):
            save_atomic(state, self.checkpoint)
        if improved:
            with writing(self.path / "best.pt", self.hint):
                save_atomic(state, self.path / "best.pt")
        with writing(self.log.path, self.hint):
            self.log.write(record, sync=record["epoch"] >= self.config.epochs)
        if self._staging is not None:
            self._swap_in()

    def close_log(self) -> None:
        """Close the metrics log (TensorBoard); the lock stays held."""
        if self.log is not None:
            self.log.close()
            self.log = None

    def close(self) -> None:
        """Close the log and release the folder's lock (a replacing run without a finished epoch is dropped)."""
        self.close_log()
        self._discard_staging()
        if self.lock is not None:
            self.lock.release()
            self.lock = None


T = TypeVar("T")


def prepare_on_main(context: DistributedContext, prepare: Callable[[], T | None]) -> tuple[T | None, bool]:
    """Run ``prepare`` on rank 0 only; under torchrun the other ranks learn whether it failed (and stop too).

    Returns:
        What ``prepare`` returned (None on the other ranks) and whether rank 0 got something other than None.

    Raises:
        RunFolderError: on the other ranks, when ``prepare`` failed on rank 0 (which raises its own error).
    """
    outcome, error = None, None
    if context.is_main:
        try:
            outcome = prepare()
        except Exception as caught:  # re-raised below, after the other ranks were told
            error = caught
    prepared = outcome is not None
    if context.is_distributed:
        message, prepared = broadcast_object((None if error is None else str(error), prepared))
        if error is None and message is not None:
            raise RunFolderError(f"rank 0 could not prepare the run folder: {message}")
    if error is not None:
        raise error
    return outcome, prepared


def check_processes(state: dict, processes: int) -> None:
    """Refuse a checkpoint written by another number of processes (each has its own random stream).

    Raises:
        ValueError: the numbers differ.
        CheckpointError: the checkpoint holds no random streams.
    """
    if not isinstance(state.get("rng"), list) or not state["rng"]:
        raise CheckpointError(
            "the checkpoint holds no random streams (rng), so it cannot be resumed exactly; it is damaged: use "
            "another checkpoint (best.pt beside it, or retrain)"
        )
    if len(state["rng"]) != processes:
        raise ValueError(
            f"the checkpoint was written by {len(state['rng'])} process(es); resume it with the same number "
            f"of processes (now {processes}) so every random stream continues exactly"
        )


def _identity(path: Path) -> tuple[int, int, int] | None:
    """Which file ``path`` is (inode, size, modification time): None when missing."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _best_stale(out: Path, state: dict) -> bool:
    """Whether best.pt lags the checkpoint: it is written just after it, so a crash can leave the previous one."""
    best_epoch = state.get("best_epoch")
    if not best_epoch or best_epoch != state["epoch"]:
        return False
    try:
        return load_checkpoint(out / "best.pt")["epoch"] != best_epoch
    except CheckpointError:
        return True


class RunLock:
    """An exclusive lock on a run folder: one process writes a run at a time.

    The lock is ``fcntl.flock`` on :data:`LOCK_FILE` in the folder; the
    operating system releases it when the process ends, however it ends
    (a SIGKILL included), so a stale lock never blocks a later run. The file
    names its holder (pid, host, start time) while it is held. Locks are
    advisory: they keep aligniform processes apart, not other programs.

    Examples:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> with RunLock(folder):
        ...     RunLock(folder).acquire()
        Traceback (most recent call last):
        ...
        aligniform.train.run_folder.RunFolderError: run folder ... is in use by another aligniform process (pid ...
    """

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self._file: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._file is not None

    def acquire(self) -> RunLock:
        """Take the lock (creating the folder's lock file if needed); return self.

        Raises:
            RunFolderError: another process holds it (the message names it), or the file cannot be written.
        """
        if self._file is not None:
            return self
        try:
            with writing(self.path):
                handle = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError:
            if self.path.is_symlink():  # opening it would empty (and then name us in) the file it points to
                raise RunFolderError(
                    f"{self.path} is a symbolic link; aligniform locks a run folder only with a file of its own: "
                    f"remove the link and rerun"
                ) from None
            raise
        stream = os.fdopen(handle, "r+b")  # a file object: closed (and so unlocked) if it is garbage-collected
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = stream.read(500).decode("utf-8", "replace").strip() or "unknown pid"
                    raise RunFolderError(
                        f"run folder {self.path.parent} is in use by another aligniform process ({holder}); "
                        f"wait for it to finish (or stop it), or choose another `out`"
                    ) from None
                except OSError as error:
                    raise RunFolderError(
                        f"cannot lock {self.path}: {error.strerror}; the file system of `out` does not support "
                        f"locks, choose a folder on a local disk"
                    ) from None
            with writing(self.path):
                fault_point("lock", self.path)
                stream.seek(0)
                stream.truncate()
                stream.write(f"pid {os.getpid()} on host {socket.gethostname()}, started {timestamp()}\n".encode())
                stream.flush()
        except BaseException:
            stream.close()
            raise
        self._file = stream
        return self

    def release(self) -> None:
        """Let go of the lock (a no-op when not held)."""
        if self._file is None:
            return
        with contextlib.suppress(OSError):  # the note is cleared so a stale one never names a dead process
            self._file.seek(0)
            self._file.truncate()
        self._file.close()
        self._file = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()
