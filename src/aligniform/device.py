"""Which torch device a single process computes on, from a user's ``device`` setting."""

from __future__ import annotations

import torch

__all__ = ["resolve_device", "resolve_indexed_device"]


def resolve_device(device: str | torch.device) -> torch.device:
    """The torch device named by ``device``, with ``"auto"`` meaning CUDA when available, else CPU.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, any torch device string
            (``"cuda:1"``, ``"mps"``) or a :class:`torch.device`.

    Returns:
        The parsed device; a bare ``"cuda"`` keeps no index.

    Raises:
        ValueError: for an unknown device, or CUDA requested but unavailable.

    Examples:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("auto").type in ("cpu", "cuda")
        True
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or a torch device string") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use device='cpu' or 'auto'")
    return parsed


def resolve_indexed_device(device: str | torch.device) -> torch.device:
    """:func:`resolve_device`, with a bare ``"cuda"`` pinned to the current CUDA device's index.

    A process's context records the exact GPU it uses, so that tensors and
    models moved there all land on the same one.

    Examples:
        >>> resolve_indexed_device("cpu")
        device(type='cpu')
    """
    parsed = resolve_device(device)
    index: int | None = parsed.index  # torch's stubs say int, but a bare "cuda" has None
    if parsed.type == "cuda" and index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return parsed
