"""Checkpoints that are never half-written, the model description they carry, and the RNG state of exact resume."""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or not from aligniform."""


FORMAT = "aligniform-checkpoint-v1"


@dataclass(frozen=True)
class ModelInfo:
    """What rebuilding a checkpoint's encoder takes, stored under the checkpoint's ``"model_info"`` key.

    Attributes:
        name: the model's name (:data:`aligniform.models.MODELS`).
        dim: embedding dimension.
        in_channels: channels of the images it was trained on.
        image_size: side of its input images (the training crops).
        dataset: the dataset it was trained on.

    Examples:
        >>> info = ModelInfo(name="convnet", dim=16, in_channels=1, image_size=8, dataset="digits")
        >>> ModelInfo.from_dict(info.to_dict()) == info
        True
    """

    name: str
    dim: int
    in_channels: int
    image_size: int
    dataset: str

    def to_dict(self) -> dict[str, str | int]:
        """Plain ``str``/``int`` values, so a checkpoint stays loadable with ``torch.load(weights_only=True)``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelInfo:
        """The description stored by :meth:`to_dict` (extra keys are ignored).

        Raises:
            CheckpointError: a field is missing.
        """
        names = [field.name for field in fields(cls)]
        missing = [name for name in names if name not in values]
        if missing:
            raise CheckpointError(f"the checkpoint's model_info lacks {', '.join(missing)}")
        return cls(
            name=str(values["name"]),
            dim=int(values["dim"]),
            in_channels=int(values["in_channels"]),
            image_size=int(values["image_size"]),
            dataset=str(values["dataset"]),
        )


def read_model_info(state: Mapping[str, Any]) -> ModelInfo:
    """The :class:`ModelInfo` of a loaded checkpoint (see :func:`load_checkpoint`).

    Raises:
        CheckpointError: the checkpoint carries no (complete) model description.
    """
    values = state.get("model_info")
    if not isinstance(values, Mapping):
        raise CheckpointError("the checkpoint has no model_info (it was not written by aligniform's Trainer)")
    return ModelInfo.from_dict(values)


def save_atomic(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` so that a crash at any moment leaves the old file or the new one.

    The data goes to a temporary file in the same folder, is flushed to disk,
    and then renamed over the target (rename is atomic on POSIX).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save({"format": FORMAT, **state}, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load an aligniform checkpoint, or raise :class:`CheckpointError` saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated and cannot be read ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no details'}); use another checkpoint "
            f"(best.pt beside it, or retrain)"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an aligniform checkpoint (expected format {FORMAT})")
    return state


def rng_state() -> dict[str, Any]:
    """Every random stream the training loop draws from, as tensors and plain Python values.

    numpy's Mersenne Twister keys are stored as a tensor rather than an
    ndarray, so a checkpoint holds nothing ``torch.load(weights_only=True)``
    refuses.
    """
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached_gaussian)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the random streams :func:`rng_state` captured (older checkpoints hold numpy's keys as an array)."""
    torch.set_rng_state(state["torch"].cpu())
    kind, keys, position, has_gauss, cached_gaussian = state["numpy"]
    if isinstance(keys, torch.Tensor):
        keys = keys.cpu().numpy().astype(np.uint32)
    np.random.set_state((kind, keys, position, has_gauss, cached_gaussian))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([cuda_state.cpu() for cuda_state in state["cuda"]])
