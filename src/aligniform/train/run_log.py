"""Where a run reports: metrics.jsonl (one JSON line per epoch), TensorBoard when installed."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from .._faults import fault_point
from .._io import json_line, read_jsonl
from .._numerics import is_finite_number
from .run_folder import RunFolderError, write_text_atomic


class RunLog:
    """Appends one JSON object per epoch to ``metrics.jsonl`` and mirrors scalars to TensorBoard.

    The checkpoint holds the same records (``"metrics"``) and is written first,
    so ``metrics.jsonl`` is never ahead of it; on resume :meth:`rewrite` makes
    the file exactly the checkpoint's records again (restoring a line lost to
    a crash between the two writes, dropping a torn last line).
    """

    def __init__(self, out: Path, tensorboard: bool = True) -> None:
        self.path = Path(out) / "metrics.jsonl"
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                SummaryWriter = None
            if SummaryWriter is not None:
                self.writer = SummaryWriter(log_dir=str(Path(out) / "tensorboard"))

    def rewrite(self, records: Sequence[dict[str, Any]]) -> bool:
        """Make ``metrics.jsonl`` hold exactly ``records`` (atomically); return whether it held anything else."""
        if not metrics_differ(self.path, records):
            return False
        write_text_atomic(self.path, "".join(metrics_line(record) for record in records), point="metrics")
        return True

    def write(self, record: dict[str, Any], sync: bool = True) -> None:
        """Append the epoch's line; if the write fails, the file is cut back so no half line stays.

        ``sync`` fsyncs the file (every line so far) after the append. The trainer syncs only the run's last
        line: the checkpoint, written (and synced) first, holds every record, and a resume rewrites this file
        from it, so an earlier line lost to a power cut costs nothing, while an fsync per epoch costs time.
        """
        line = metrics_line(record).encode("utf-8")
        with open_for_append(self.path) as stream:
            size = stream.tell()
            try:
                stream.write(line[: len(line) // 2])
                stream.flush()
                fault_point("metrics.append", self.path)
                stream.write(line[len(line) // 2 :])
                stream.flush()
                if sync:
                    os.fsync(stream.fileno())
            except BaseException:
                try:
                    stream.truncate(size)
                except OSError:
                    pass  # the next resume rewrites the file from the checkpoint
                raise
        if self.writer is not None:
            for key, value in record.items():
                if key != "epoch" and is_finite_number(value):
                    self.writer.add_scalar(key, value, record["epoch"])
            self.writer.flush()

    def close(self) -> None:
        """Close the TensorBoard writer."""
        if self.writer is not None:
            self.writer.close()


def open_for_append(path: Path) -> IO[bytes]:
    """``path`` opened to append, created if missing; a symbolic link is refused, never followed.

    Raises:
        RunFolderError: ``path`` is a symbolic link.
        OSError: it cannot be opened.
    """
    try:
        handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as error:
        if path.is_symlink():
            raise RunFolderError(
                f"{path} is a symbolic link; aligniform does not append through links: replace it by the file it "
                f"points to, then rerun the same command with `resume`"
            ) from None
        raise error from None
    return os.fdopen(handle, "ab")


def metrics_line(record: dict[str, Any]) -> str:
    r"""One line of ``metrics.jsonl``: strict JSON (NaN and infinities as null) and a newline.

    Examples:
        >>> metrics_line({"epoch": 1, "loss": float("nan")})
        '{"epoch": 1, "loss": null}\n'
    """
    return json_line(record)


def metrics_differ(path: str | Path, records: Sequence[dict[str, Any]]) -> bool:
    """Whether the ``metrics.jsonl`` at ``path`` holds anything but ``records`` (a line lost or torn by a crash).

    A missing or unreadable file differs unless there are no records and no file.

    Examples:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.jsonl"
        >>> metrics_differ(path, []), metrics_differ(path, [{"epoch": 1}])
        (False, True)
    """
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8") != "".join(metrics_line(record) for record in records)
    except (OSError, UnicodeDecodeError):
        return bool(records) or path.exists()


def recover_metrics(path: str | Path, epochs_done: int) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl`` up to ``epochs_done``, for checkpoints that do not hold their metrics.

    Checkpoints written before the metrics were stored in them are resumed
    with this: a torn last line (a run killed while appending) is dropped, a
    line repeated for one epoch is kept once (the later one), and lines of
    epochs after the checkpoint's are dropped.

    Raises:
        RunFolderError: a line other than the last is not a JSON object (the message names the file and line).
    """
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    last = max((number for number, line in enumerate(lines, start=1) if line.strip()), default=0)
    by_epoch: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
            if number == last:
                continue  # the half-written line of a killed run
            raise RunFolderError(
                f"{path}, line {number}: not a JSON object with an epoch; remove or repair that line, then resume"
            )
        if record["epoch"] <= epochs_done:
            by_epoch[record["epoch"]] = record
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def read_metrics(path: str | Path) -> list[dict]:
    r"""The per-epoch records of a ``metrics.jsonl`` file, or of the one in a run folder.

    Raises:
        ValueError: a line is not a JSON object (the message names the file and line).

    Examples:
        >>> import json, tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "loss": 0.5}) + "\n")
        >>> read_metrics(folder)
        [{'epoch': 1, 'loss': 0.5}]
    """
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "metrics.jsonl"
    return read_jsonl(path)
