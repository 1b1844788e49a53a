"""Checkpoints that are never half-written, the model description they carry, and the RNG state of exact resume."""

from __future__ import annotations

import collections
import contextlib
import pickle
import random
import re
import struct
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from .._io import write_atomic


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
    """Write ``state`` to ``path`` as an aligniform checkpoint, atomically (see :func:`write_atomic`).

    Raises:
        OSError: the file cannot be written (e.g. the disk is full); the old file is kept.
    """

    def write(stream: IO[bytes]) -> None:
        try:
            torch.save({"format": FORMAT, **state}, stream)
        except RuntimeError as error:  # torch reports a failed write as "inline_container.cc: unexpected pos"
            cause = _os_error_behind(error)
            if cause is None:
                raise
            raise cause from None

    write_atomic(path, write)


def _os_error_behind(error: BaseException) -> OSError | None:
    seen = error.__cause__ or error.__context__
    while seen is not None and not isinstance(seen, OSError):
        seen = seen.__cause__ or seen.__context__
    return seen


def _safe_globals() -> list[Any]:
    """What aligniform's checkpoints may hold beyond tensors and plain values.

    numpy arrays and dtypes (the RNG state of checkpoints written before numpy's
    keys were stored as a tensor), under numpy 2's and numpy 1's module names,
    and ``collections.Counter`` (MultiStepLR's milestones).
    """
    core = getattr(np, "_core", None) or np.core
    reconstruct = core.multiarray._reconstruct
    allowed: list[Any] = [reconstruct, np.ndarray, np.dtype, collections.Counter]
    if core is not getattr(np, "core", None):
        allowed.append((reconstruct, "numpy.core.multiarray._reconstruct"))
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [dtypes.UInt32DType, dtypes.Int64DType, dtypes.Float64DType]
    return allowed


@contextlib.contextmanager
def _allowing_aligniform_types() -> Iterator[None]:
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:  # torch < 2.5: only tensors and plain values load
        yield
        return
    with safe_globals(_safe_globals()):
        yield


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load an aligniform checkpoint without running code from it, or raise :class:`CheckpointError`.

    The file is read with ``torch.load(weights_only=True)``: tensors, plain
    values and the few types aligniform itself writes (:func:`_safe_globals`).
    A file that needs anything else (a pickle calling a function, a class from
    elsewhere) is refused, since unpickling it could execute code.

    Raises:
        CheckpointError: the file is missing, corrupt, holds other objects, or is not an aligniform checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # torch warns before some refusals; the CheckpointError below says all there is to say, in one line.
        with _allowing_aligniform_types(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if found is None and "weights only" not in str(error).lower():
            raise _corrupt(path, error) from None
        what = found.group(1) if found else "objects of other types"
        raise CheckpointError(
            f"checkpoint {path} holds {what}, which aligniform never writes; it was not loaded, because "
            f"unpickling it could run code from the file. Use a checkpoint written by aligniform"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise _corrupt(path, error) from None
    except Exception as error:  # a damaged archive also fails deeper in torch (KeyError, struct.error, ...)
        raise _corrupt(path, error) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an aligniform checkpoint (expected format {FORMAT})")
    check_state(state, path, required=())  # what a full checkpoint must hold is checked where it is used
    return state


#: The keys every aligniform checkpoint holds, with their types; later ones (metrics, history, model_info,
#: objective, ...) are checked only when present, since older checkpoints lack them.
_REQUIRED: dict[str, type | tuple[type, ...]] = {"config": dict, "epoch": int, "model": dict}
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "best_knn": (int, float),
    "best_epoch": int,
    "metrics": list,
    "history": list,
    "optimizer": dict,
    "scheduler": dict,
    "objective": dict,
    "rng": list,
    "model_info": dict,
}


def check_state(state: Mapping[str, Any], path: str | Path, required: tuple[str, ...] = tuple(_REQUIRED)) -> None:
    """Refuse a loaded checkpoint whose ``required`` keys are missing or whose keys are of the wrong type.

    Raises:
        CheckpointError: naming the first key that is wrong.

    Examples:
        >>> check_state({"config": {}, "epoch": "3", "model": {}}, "c.pt")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        aligniform.train.checkpoint.CheckpointError: checkpoint c.pt is damaged: its epoch is of type str (expected ...
    """
    for key in required:
        if key not in state:
            raise CheckpointError(
                f"checkpoint {path} is damaged: it has no {key}; use another checkpoint (best.pt beside it, or retrain)"
            )
    for key, kind in {**_REQUIRED, **_OPTIONAL}.items():
        value = state.get(key)
        if key in state and (isinstance(value, bool) or not isinstance(value, kind)):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise CheckpointError(
                f"checkpoint {path} is damaged: its {key} is of type {type(value).__name__} (expected {names}); "
                f"use another checkpoint (best.pt beside it, or retrain)"
            )
    weights = state.get("model", {})
    if state.get("epoch", 0) < 0 or any(not isinstance(tensor, torch.Tensor) for tensor in weights.values()):
        raise CheckpointError(
            f"checkpoint {path} is damaged: its epoch or weights are invalid; use another checkpoint (best.pt beside "
            f"it, or retrain)"
        )


@contextlib.contextmanager
def damaged_checkpoint(path: str | Path) -> Iterator[None]:
    """Turn an error of restoring a loaded checkpoint (a key or value its reader did not expect) into one line.

    Raises:
        CheckpointError: naming ``path`` and the first line of the error.
    """
    try:
        yield
    except CheckpointError:
        raise
    except (
        KeyError,
        IndexError,
        TypeError,
        ValueError,
        AttributeError,
        RuntimeError,
        ArithmeticError,
        struct.error,
    ) as error:
        detail = str(error).splitlines()[0] if str(error) else "no details"
        raise CheckpointError(
            f"checkpoint {path} cannot be restored ({type(error).__name__}: {detail}); use another checkpoint "
            f"(best.pt beside it, or retrain)"
        ) from None


def _corrupt(path: Path, error: BaseException) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} is corrupt or truncated and cannot be read ({type(error).__name__}: "
        f"{str(error).splitlines()[0] if str(error) else 'no details'}); use another checkpoint "
        f"(best.pt beside it, or retrain)"
    )


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
