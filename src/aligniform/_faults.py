"""Fault injection at the run folder's write points, so tests can prove what survives a crash at each of them.

A process whose environment sets ``ALIGNIFORM_FAULT=POINT:KIND[:N]`` (several
comma-separated) fails at the ``N``-th time (default the first) it reaches the
write point ``POINT``:

* ``kill``: SIGKILL to itself (as a power cut or the OOM killer would: no cleanup runs);
* ``enospc``: ``OSError(ENOSPC)``, as a full disk;
* ``eacces``: ``OSError(EACCES)``, as a folder made read-only.

The points (see :data:`POINTS`) sit where a real write could fail: in the middle
of writing a temporary file (part of it already on disk), just before the
rename that publishes it, in the middle of appending a ``metrics.jsonl`` line,
and before ``results.json`` and the lock's holder note. Without the variable a
point costs one dictionary lookup.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

#: The environment variable read at each point.
FAULT_ENV = "ALIGNIFORM_FAULT"

#: Every write point, in the order a run reaches them.
POINTS = (
    "lock",  # writing the holder's note into the lock file
    "config.write",
    "config.rename",
    "history.write",
    "history.rename",
    "metrics.write",  # a resume rewriting metrics.jsonl from the checkpoint
    "metrics.rename",
    "checkpoint.write",  # the temporary file, half written
    "checkpoint.rename",
    "best.write",
    "best.rename",
    "metrics.append",  # the epoch's line, half written
    "swap.write",  # overwrite: the list of the new run's files, written once its first epoch is saved
    "swap.rename",  # ... and published: from here on the new run replaces the old one
    "swap.move",  # moving one of the new run's files into the run folder
    "results",
)

KINDS = ("kill", "enospc", "eacces")

_hits: dict[str, int] = {}


def fault_point(point: str, path: str | Path | None = None) -> None:
    """Fail here if :data:`FAULT_ENV` asks for it (see the module's docstring); otherwise do nothing.

    Args:
        point: the write point's name, one of :data:`POINTS`.
        path: the file being written, named by the injected error.

    Raises:
        OSError: an injected ``enospc`` or ``eacces`` fault.

    Examples:
        >>> fault_point("checkpoint.write")  # no ALIGNIFORM_FAULT: nothing happens
    """
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    for fault in spec.split(","):
        name, _, rest = fault.strip().partition(":")
        if name != point:
            continue
        kind, _, nth = rest.partition(":")
        _hits[fault] = _hits.get(fault, 0) + 1
        if _hits[fault] != int(nth or 1):
            continue
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        code = {"enospc": errno.ENOSPC, "eacces": errno.EACCES}.get(kind)
        if code is None:
            raise ValueError(f"{FAULT_ENV}: unknown fault kind {kind!r} in {fault!r}; use one of {', '.join(KINDS)}")
        raise OSError(code, os.strerror(code), None if path is None else str(path))


def reset() -> None:
    """Forget how often each point was reached (for tests that inject faults in one process several times)."""
    _hits.clear()
