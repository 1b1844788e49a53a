"""Where a run reports: metrics.jsonl (one JSON line per epoch), TensorBoard when installed."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .._io import append_jsonl, read_jsonl


class RunLog:
    """Appends one JSON object per epoch to ``metrics.jsonl`` and mirrors scalars to TensorBoard.

    On resume, :meth:`truncate_after` drops lines of epochs that the restored
    checkpoint does not contain (a run killed between writing its metrics and
    its checkpoint would otherwise log an epoch twice).
    """

    def __init__(self, out: Path, tensorboard: bool = True):
        self.path = Path(out) / "metrics.jsonl"
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                SummaryWriter = None
            if SummaryWriter is not None:
                self.writer = SummaryWriter(log_dir=str(Path(out) / "tensorboard"))

    def truncate_after(self, epoch: int) -> None:
        if not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["epoch"] <= epoch]
        self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict) -> None:
        append_jsonl(self.path, record)
        if self.writer is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(key, value, record["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


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
