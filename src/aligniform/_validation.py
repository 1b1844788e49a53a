"""Input checks shared by every loss and metric.

Every public loss and metric funnels its arguments through these helpers, so a
user gets the same clear ``ValueError`` (naming the argument and what was
expected) whichever function they called.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from ._numerics import is_finite_number
from ._outputs import check_output_path  # noqa: F401  (re-exported: the writers import it from here)
from .errors import OptionError

_CHECKS_ENABLED = True

# Unit-norm tolerance. Low-precision dtypes cannot represent a unit vector's
# norm to 1e-3, so the tolerance grows with the dtype's machine epsilon.
NORM_TOLERANCE = 1e-3

#: Features or labels as the losses and metrics accept them: a tensor, or a numpy array (converted without
#: copy) or other array-like.
ArrayLike: TypeAlias = "torch.Tensor | npt.ArrayLike"


def set_input_checks(enabled: bool) -> None:
    """Turn the value checks (NaN/inf, unit norm) on or off globally.

    Shape, dtype and hyper-parameter checks always run; only the checks that
    read tensor values (and so synchronise a GPU) can be switched off, e.g. in
    a tuned training loop after the first steps were checked.

    Examples:
        >>> import aligniform
        >>> aligniform.set_input_checks(False)
        >>> aligniform.set_input_checks(True)
    """
    global _CHECKS_ENABLED
    _CHECKS_ENABLED = bool(enabled)


def input_checks_enabled() -> bool:
    """Whether the value checks run (see :func:`set_input_checks`)."""
    return _CHECKS_ENABLED


@contextmanager
def input_checks(enabled: bool) -> Iterator[None]:
    """Context manager form of :func:`set_input_checks`."""
    previous = _CHECKS_ENABLED
    set_input_checks(enabled)
    try:
        yield
    finally:
        set_input_checks(previous)


def _real_number(value: object) -> float | None:
    """``value`` as a float when it is a real number, else ``None``.

    Numbers are Python ints and floats, numpy integer and floating scalars (and
    0-dim arrays of them) and one-element integer or floating-point tensors
    (read without touching the tensor, which keeps its graph). Bools and strings
    are not: ``t=True`` or ``t="2"`` is almost always a mistake.
    """
    if isinstance(value, (bool, np.bool_, str, bytes)):
        return None
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dtype == torch.bool or value.is_complex():
            return None
        return float(value.detach().reshape(()).item())
    if isinstance(value, np.ndarray):
        if value.ndim != 0 or value.dtype.kind not in "iuf":
            return None
        return float(value)
    if isinstance(value, numbers.Real):  # int, float, Fraction, numpy integer and floating scalars
        return float(value)
    return None


def check_positive(value: object, name: str) -> float:
    """Return ``value`` as a float, or raise if it is not a finite number > 0.

    Python and numpy numbers and one-element tensors pass (a tensor is only
    read: the caller keeps it, with its gradient, if it needs one); bools and
    strings are rejected with a ``ValueError`` naming ``name``.

    Examples:
        >>> check_positive(0.5, "tau")
        0.5
        >>> check_positive("2", "t")
        Traceback (most recent call last):
        ...
        ValueError: `t` must be a positive number, got '2'
    """
    number = _real_number(value)
    if number is None:
        raise ValueError(f"`{name}` must be a positive number, got {value!r}")
    if not is_finite_number(number) or number <= 0:
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")
    return number


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int, or raise if it is not an integer > 0.

    Python ints, numpy integers and one-element integer tensors pass; bools (an
    ``int`` subclass that is almost always a mistake here), floats (even
    ``2.0``), strings and anything else are rejected with a ``ValueError``
    naming ``name``.

    Examples:
        >>> check_positive_int(3, "k")
        3
        >>> check_positive_int(1.5, "k")
        Traceback (most recent call last):
        ...
        ValueError: `k` must be a positive integer, got 1.5
    """
    integer: int | None = None
    if isinstance(value, torch.Tensor):
        integral = not (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool)
        if value.numel() == 1 and integral:
            integer = int(value.reshape(()).item())
    elif isinstance(value, np.ndarray):
        if value.ndim == 0 and value.dtype.kind in "iu":
            integer = int(value)
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        integer = int(value)
    if integer is None or integer <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
    return integer


def check_optional_positive_int(value: object, name: str) -> int | None:
    """``None`` (the caller's default), or ``value`` as an int > 0; anything else is an :class:`OptionError`.

    Examples:
        >>> check_optional_positive_int(None, "block_rows") is None
        True
        >>> check_optional_positive_int(0, "block_rows")
        Traceback (most recent call last):
        ...
        aligniform.errors.OptionError: `block_rows` must be a positive integer or None (the default), got 0
    """
    if value is None:
        return None
    try:
        return check_positive_int(value, name)
    except ValueError:
        raise OptionError(f"`{name}` must be a positive integer or None (the default), got {value!r}") from None


def check_has_storage(x: torch.Tensor, name: str) -> None:
    """Raise if ``x`` lives on the ``meta`` device: it has a shape but no values to compute with.

    Examples:
        >>> check_has_storage(torch.empty(2, 3, device="meta"), "x")
        Traceback (most recent call last):
        ...
        TypeError: `x` is a meta tensor (a shape without values); pass a tensor on the CPU or a GPU
    """
    if x.is_meta:
        raise TypeError(f"`{name}` is a meta tensor (a shape without values); pass a tensor on the CPU or a GPU")


def check_callable(value: object, name: str, expected: str) -> None:
    """Raise a ``TypeError`` naming ``name`` unless ``value`` is ``None`` or callable (``expected`` says its form).

    Examples:
        >>> check_callable(5, "views", "a function inputs -> (x_view, y_view)")
        Traceback (most recent call last):
        ...
        TypeError: `views` must be a function inputs -> (x_view, y_view), or None, got int 5
    """
    if value is not None and not callable(value):
        raise TypeError(f"`{name}` must be {expected}, or None, got {type(value).__name__} {value!r}")


def check_fraction(value: object, name: str) -> float:
    """Return ``value`` as a float in (0, 1], or raise."""
    number = check_positive(value, name)
    if number > 1:
        raise ValueError(f"`{name}` must lie in (0, 1] (the fraction of negatives kept), got {value!r}")
    return number


def _norm_tolerance(dtype: torch.dtype) -> float:
    return max(NORM_TOLERANCE, 8 * torch.finfo(dtype).eps)


def as_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    """Convert numpy arrays (and array-likes) to tensors without copying when possible."""
    if isinstance(x, torch.Tensor):
        return x
    array = x if isinstance(x, np.ndarray) else None
    if array is None:
        try:
            array = np.asarray(x)
        except (TypeError, ValueError):
            raise ValueError(f"`{name}` must be a torch.Tensor or numpy array, got {type(x).__name__}") from None
    if array.dtype.kind not in "biufc":  # strings, objects, dates: torch cannot hold them
        if array is not x:
            raise ValueError(f"`{name}` must be a torch.Tensor or numpy array of numbers, got {type(x).__name__}")
        raise ValueError(f"`{name}` must hold numbers, got an array of dtype {array.dtype}")
    if not array.dtype.isnative:  # e.g. big-endian data read from a file: torch reads native byte order only
        array = array.astype(array.dtype.newbyteorder("="))
    return torch.from_numpy(array)


def check_features(
    x: ArrayLike,
    name: str,
    *,
    normalize: bool = False,
    min_rows: int = 1,
    require_unit_norm: bool = True,
) -> torch.Tensor:
    """Validate an ``(N, d)`` feature matrix and return it (normalised if asked).

    Args:
        x: features, a tensor (or numpy array, converted without copy).
        name: the argument's name, used in error messages.
        normalize: L2-normalise the rows instead of requiring unit norm.
        min_rows: the smallest N the caller can work with.
        require_unit_norm: check that rows lie on the unit sphere.
    """
    x = check_feature_structure(x, name, min_rows)
    return check_feature_values(x, name, normalize, require_unit_norm)


def check_feature_structure(x: ArrayLike, name: str, min_rows: int = 1) -> torch.Tensor:
    """Shape and dtype checks only (cheap, never reads values)."""
    x = as_tensor(x, name)
    check_has_storage(x, name)
    if x.dim() != 2:
        raise ValueError(f"`{name}` must be a 2-D (N, d) feature matrix, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"`{name}` must have a floating-point dtype, got {x.dtype}")
    n, d = x.shape
    if n < min_rows:
        raise ValueError(
            f"`{name}` has {n} row(s) but at least {min_rows} are needed "
            f"(pairs of distinct samples need a batch of two or more)"
        )
    if d < 1:
        raise ValueError(f"`{name}` must have at least one feature column, got shape {tuple(x.shape)}")
    return x


def check_feature_values(
    x: torch.Tensor, name: str, normalize: bool = False, require_unit_norm: bool = True
) -> torch.Tensor:
    """NaN/inf and unit-norm checks (skipped when input checks are switched off); optional normalisation.

    A loss calls this on every step, so the passing case reads the values once: unit-norm rows are finite
    (a NaN or an infinity makes its row's norm NaN or infinite), so one norm pass checks both, and a finite
    sum of all values proves them finite. Only a failing input pays for the exact checks that word the error.
    """
    if not _CHECKS_ENABLED:
        return F.normalize(x, dim=1) if normalize else x
    if normalize:
        if not _sum_is_finite(x):
            check_finite(x, name)  # a finite matrix whose sum overflows passes here
        return F.normalize(x, dim=1)
    if require_unit_norm:
        if not _norm_deviation(x) <= _norm_tolerance(x.dtype):  # NaN fails this comparison too
            check_finite(x, name)
            check_unit_norm(x, name)
    elif not _sum_is_finite(x):
        check_finite(x, name)
    return x


def check_finite(x: torch.Tensor, name: str) -> None:
    """Raise a ``ValueError`` naming ``name`` if ``x`` holds a NaN or an infinity (reads every value).

    Examples:
        >>> check_finite(torch.tensor([1.0, float("nan")]), "x")
        Traceback (most recent call last):
        ...
        ValueError: `x` contains NaN or inf values
    """
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"`{name}` contains NaN or inf values")


def _sum_is_finite(x: torch.Tensor) -> bool:
    """Whether the sum of x is finite: then every value is (a NaN or an inf propagates); one cheap pass."""
    with torch.no_grad():
        return bool(torch.isfinite(x.sum(dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)))


def _norm_deviation(x: torch.Tensor) -> float:
    """The largest |row norm - 1| (NaN if a value is NaN, inf if one is infinite; 0 for no rows)."""
    if x.shape[0] == 0:  # a rank's shard of a global batch may have no rows
        return 0.0
    with torch.no_grad():
        if x.dtype in (torch.float32, torch.float64):
            return float(torch.linalg.vector_norm(torch.linalg.vector_norm(x, dim=1).sub_(1), ord=math.inf))
        # Half precision: norms in float32, chunked so that a (1e6, 128) matrix is not copied whole.
        deviations = [
            torch.linalg.vector_norm(torch.linalg.vector_norm(chunk, dim=1, dtype=torch.float32).sub_(1), ord=math.inf)
            for chunk in x.split(65536)
        ]
        return float(torch.stack(deviations).max())


def check_feature_pair(
    x: ArrayLike, y: ArrayLike, *, normalize: bool = False, min_rows: int = 1, require_unit_norm: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate positive pairs: structure of both, then matching shapes, then values."""
    x = check_feature_structure(x, "x", min_rows)
    y = check_feature_structure(y, "y", min_rows)
    check_same_shape(x, y)
    if _CHECKS_ENABLED and require_unit_norm and not normalize and _pair_is_unit(x, y):
        return x, y  # the common passing case, both in one pass; a failure is worded below, per tensor
    return (
        check_feature_values(x, "x", normalize, require_unit_norm),
        check_feature_values(y, "y", normalize, require_unit_norm),
    )


def _pair_is_unit(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether both matrices' rows are unit-norm (and so finite), read in one pass of a few operations."""
    if x.dtype not in (torch.float32, torch.float64) or x.shape[0] == 0:
        return False
    with torch.no_grad():
        norms = torch.cat([torch.linalg.vector_norm(x, dim=1), torch.linalg.vector_norm(y, dim=1)])
        return float(torch.linalg.vector_norm(norms.sub_(1), ord=math.inf)) <= _norm_tolerance(x.dtype)


def check_unit_norm(x: torch.Tensor, name: str) -> None:
    """Raise unless every row of ``x`` has L2 norm 1 (within a dtype-aware tolerance)."""
    tolerance = _norm_tolerance(x.dtype)
    deviation = _norm_deviation(x)
    if not deviation <= tolerance:
        raise ValueError(
            f"`{name}` must be L2-normalised (unit-norm rows, tolerance {tolerance:g}); the largest "
            f"deviation of a row norm from 1 is {deviation:.3g}. Normalise first with "
            f"torch.nn.functional.normalize({name}, dim=1), or turn on `normalize`"
        )


def check_same_shape(x: torch.Tensor, y: torch.Tensor, names: Sequence[str] = ("x", "y")) -> None:
    """Positive pairs must match row for row, in shape, dtype and device."""
    a, b = names
    if x.shape != y.shape:
        raise ValueError(
            f"`{a}` and `{b}` must have the same shape (one row per positive pair), "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.dtype != y.dtype:
        raise ValueError(f"`{a}` and `{b}` must have the same dtype, got {x.dtype} and {y.dtype}")
    if x.device != y.device:
        raise ValueError(f"`{a}` and `{b}` must be on the same device, got {x.device} and {y.device}")


def check_queue(queue: ArrayLike | None, x: torch.Tensor, normalize: bool = False) -> torch.Tensor | None:
    """Validate a ``(K, d)`` queue of past features; it never carries gradient."""
    if queue is None:
        return None
    queue = check_feature_structure(queue, "queue")
    if queue.shape[1] != x.shape[1]:
        raise ValueError(
            f"`queue` must have the same feature width as the batch: expected (K, {x.shape[1]}), "
            f"got {tuple(queue.shape)}"
        )
    if queue.device != x.device:
        raise ValueError(f"`queue` must be on the same device as the features ({x.device}), got {queue.device}")
    return check_feature_values(queue.detach(), "queue", normalize).to(x.dtype)


def class_ids(labels: object, n: int, name: str = "labels") -> torch.Tensor:
    """Integer class labels of ``n`` rows; class names (strings) become ids in their sorted order.

    Tolerance and the mean classifier only compare labels for equality, so names and the ids they map to give
    the same numbers. Integer labels pass through :func:`check_labels` (-1 = unlabelled); a name cannot mark a
    row unlabelled.

    Examples:
        >>> class_ids(["dog", "cat", "dog"], 3).tolist()
        [1, 0, 1]
    """
    if isinstance(labels, (list, tuple)) and labels and all(isinstance(label, str) for label in labels):
        labels = np.asarray(labels, dtype=str)
    if isinstance(labels, np.ndarray) and labels.dtype.kind in "US":
        if labels.ndim != 1:
            raise ValueError(f"`{name}` must be a 1-D list of class names, got shape {labels.shape}")
        ids = np.unique(labels, return_inverse=True)[1].reshape(-1).astype(np.int64)
        return check_labels(torch.from_numpy(ids), n, name)
    if isinstance(labels, (list, tuple)) and any(isinstance(label, str) for label in labels):
        raise TypeError(f"`{name}` must be all integers or all strings (class names), got a mix")
    return check_labels(labels, n, name)  # type: ignore[arg-type]


def check_labels(labels: ArrayLike, n: int, name: str = "labels", *, whole_floats: bool = True) -> torch.Tensor:
    """Validate a 1-D integer label vector of length ``n``.

    Floating-point labels holding whole numbers (as label files saved from float arrays often do) pass as
    integers when ``whole_floats`` is true, the rule the metrics and ``aligniform analyze`` share; losses pass
    ``whole_floats=False``, since float labels reaching a loss in a training step are most likely a mistake.
    """
    labels = as_tensor(labels, name)
    check_has_storage(labels, name)
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(f"`{name}` must be a 1-D vector with one label per row ({n}), got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        if whole_floats and labels.is_floating_point() and bool((labels == labels.round()).all()):
            return labels.long()
        raise ValueError(f"`{name}` must hold integer class labels, got dtype {labels.dtype}")
    return labels.long()
