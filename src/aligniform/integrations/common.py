"""What every integration shares: embedding held-out positive pairs without disturbing training, and measuring them.

Needs nothing beyond aligniform's own dependencies, so a plain PyTorch (or DDP)
training loop can call :func:`measure_pairs` directly; the framework callbacks
(:mod:`.lightning`, :mod:`.transformers`) and the streaming metric
(:mod:`.torchmetrics`) are thin layers over it.

The held-out pairs come as an iterable of batches (a ``DataLoader``, a list),
re-read at every measurement:

* without ``views``: each batch is ``(x_view, y_view)`` or
  ``(x_view, y_view, labels)``, two views of the same samples row for row;
* with ``views``, a function ``views(inputs) -> (x_view, y_view)`` (an
  augmentation pipeline): each batch is ``inputs`` or ``(inputs, labels)``.

Inputs may be tensors or dicts of tensors (tokenised text: the model is then
called as ``model(**inputs)``). The measurement runs under ``torch.no_grad()``
with the model in eval mode and every random generator (torch CPU and CUDA,
numpy, Python's ``random``) seeded with ``seed``, so seeded views are the same
at every measurement; afterwards each module's train/eval mode and every
generator's state are restored, so training continues exactly as without it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import check_has_storage, check_positive, check_positive_int
from ..analysis.embeddings import EmbeddingSet
from ..errors import OptionError
from ..metric_registry import higher_is_better, measure, metric_names

__all__ = [
    "HIGHER_IS_BETTER",
    "METRIC_KEYS",
    "MeasureOptions",
    "embed_pairs",
    "hypersphere_metrics",
    "measure_pairs",
    "preserved_training_state",
]

METRIC_KEYS = metric_names()
"""The numbers :func:`hypersphere_metrics` reports: every metric of :data:`aligniform.metric_registry.METRICS`
(``tolerance`` and ``mean_classifier_acc`` need labels)."""

HIGHER_IS_BETTER = frozenset(name for name in METRIC_KEYS if higher_is_better(name))
"""The metrics for which higher is better (from the registry); for alignment, uniformity and the modality gap
lower is."""

Embed = Callable[[nn.Module, Any], Any]
"""``embed(model, inputs)``: the embeddings of a batch of inputs (default: the model's output)."""

Views = Callable[[Any], tuple[Any, Any]]
"""``views(inputs) -> (x_view, y_view)``: two views of a batch of inputs."""

_EMBEDDING_KEYS = ("sentence_embedding", "embeddings", "embedding", "pooler_output")


def hypersphere_metrics(
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray | None = None,
    *,
    normalize: bool = True,
    t: float = 2.0,
    alpha: float = 2.0,
    max_pairs: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Every hypersphere metric of positive pairs ``(x_i, y_i)``: :func:`~aligniform.metric_registry.measure`.

    Returns the keys of :data:`METRIC_KEYS` that apply: ``alignment``,
    ``uniformity`` (of ``x``), ``uniformity_y``, ``modality_gap``, the
    retrieval recalls in both directions and ``effective_rank`` always;
    ``tolerance`` and ``mean_classifier_acc`` (class means from a seeded,
    class-stratified half of the labelled rows, accuracy on the other half)
    when labels allow them. Uniformity and retrieval are exact over all rows,
    or with ``max_pairs`` estimated from that many sampled pairs (and
    correspondingly many sampled queries).

    Args:
        x: ``(N, d)`` embeddings.
        y: ``(N, d)`` their positive partners (another view, or the other tower).
        labels: ``(N,)`` integer classes (-1 = unlabelled), or ``None``.
        normalize: L2-normalise the rows first (encoders rarely end on the
            sphere); with ``False`` they must already be unit-norm.
        t: uniformity temperature.
        alpha: alignment exponent.
        max_pairs: sample this many pairs for uniformity (for very large N).
        seed: seed of the pair sample and of the mean-classifier split.

    Examples:
        >>> import torch
        >>> from aligniform.integrations.common import hypersphere_metrics
        >>> z = torch.eye(4)
        >>> values = hypersphere_metrics(z, z)
        >>> values["alignment"], values["recall_at_1_x_to_y"], values["modality_gap"]
        (0.0, 1.0, 0.0)
    """
    options = MeasureOptions(normalize, t, alpha, max_pairs, seed)  # every option checked, as the integrations do
    for name, value in (("x", x), ("y", y), ("labels", labels)):
        if isinstance(value, torch.Tensor):
            check_has_storage(value, name)
    pairs = EmbeddingSet(x, y, labels, source="held-out pairs")  # its shape checks name the source in messages
    result = measure(
        pairs.x,
        pairs.y,
        pairs.labels,
        normalize=options.normalize,
        t=options.t,
        alpha=options.alpha,
        max_pairs=options.max_pairs,
        seed=options.seed,
    )
    return {key: float(value) for key, value in result.items() if value is not None}


@contextmanager
def preserved_training_state(model: nn.Module, seed: int = 0) -> Iterator[None]:
    """Eval mode and seeded random generators inside; every module's mode and every generator's state restored after.

    Seeds torch (CPU and every initialised CUDA device), numpy's global
    generator and Python's ``random`` with ``seed``, so anything random
    inside (augmented views, a shuffling loader) is the same each time.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
        >>> before = torch.get_rng_state()
        >>> with preserved_training_state(model):
        ...     model.training
        False
        >>> model.training, torch.equal(torch.get_rng_state(), before)
        (True, True)
    """
    modes = [(module, module.training) for module in model.modules()]
    # torch's fork_rng restores the CPU and CUDA generators; numpy's and Python's it does not know: those by hand.
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        model.eval()
        try:
            yield
        finally:
            for module, mode in modes:
                module.training = mode
            np.random.set_state(numpy_state)
            random.setstate(python_state)


def embed_pairs(
    model: nn.Module,
    data: Iterable[Any],
    *,
    views: Views | None = None,
    embed: Embed | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Embeddings of both views of every held-out pair, on the CPU: ``(x, y, labels or None)``.

    Runs inside :func:`preserved_training_state` and ``torch.no_grad()``; see
    the module docstring for the batch formats.

    Args:
        model: the encoder (an ``nn.Module``; a LightningModule, a Hugging Face model).
        data: batches of held-out pairs, or of inputs when ``views`` is given.
        views: ``views(inputs) -> (x_view, y_view)``, run on ``device``.
        embed: ``embed(model, inputs) -> (B, d)`` embeddings; default: the
            model's output, or its ``sentence_embedding`` / ``embeddings`` /
            ``pooler_output`` entry when it returns a dict, or its first
            element when it returns a tuple.
        device: where the batches go (default: the device of the model's
            first parameter, else the CPU).
        seed: seed of every random generator during the measurement.

    Raises:
        ValueError: a batch has the wrong form, some batches have labels and
            others not, the model's output is not a 2-D embedding matrix, or
            ``data`` yields no batch.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from aligniform.integrations.common import embed_pairs
        >>> batches = [(torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))]
        >>> x, y, labels = embed_pairs(nn.Linear(3, 2), batches)
        >>> x.shape, labels.tolist()
        (torch.Size([4, 2]), [0, 1, 0, 1])
    """
    device = torch.device(device) if device is not None else _model_device(model)
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    with preserved_training_state(model, seed), torch.no_grad():
        for index, batch in enumerate(data):
            first, second, batch_labels = _split_batch(batch, views, device, index)
            xs.append(_embeddings(model, first, embed))
            ys.append(_embeddings(model, second, embed))
            if index == 0:
                has_labels = batch_labels is not None
            elif (batch_labels is not None) != has_labels:
                raise ValueError(
                    f"held-out batch {index} {'has' if batch_labels is not None else 'lacks'} labels but batch 0 "
                    f"{'does not' if batch_labels is not None else 'has them'}: give every batch labels or none"
                )
            if batch_labels is not None:
                labels.append(torch.as_tensor(batch_labels).detach().cpu().long().flatten())
    if not xs:
        raise ValueError("the held-out data yielded no batch")
    return torch.cat(xs), torch.cat(ys), torch.cat(labels) if labels else None


def measure_pairs(
    model: nn.Module,
    data: Iterable[Any],
    *,
    views: Views | None = None,
    embed: Embed | None = None,
    device: torch.device | str | None = None,
    normalize: bool = True,
    t: float = 2.0,
    alpha: float = 2.0,
    max_pairs: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """:func:`hypersphere_metrics` of the held-out pairs as ``model`` embeds them now (:func:`embed_pairs`).

    The call for a hand-written training loop: it leaves the model's modes and
    the random generators as it found them. In a DDP loop call it on the
    unwrapped module (``ddp.module``) on one rank.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from aligniform.integrations import measure_pairs
        >>> images = torch.randn(32, 8)
        >>> def views(x):  # two noisy views of each input
        ...     return x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x)
        >>> values = measure_pairs(nn.Linear(8, 4), [images[:16], images[16:]], views=views)
        >>> sorted(values)[:3]
        ['alignment', 'effective_rank', 'modality_gap']
    """
    x, y, labels = embed_pairs(model, data, views=views, embed=embed, device=device, seed=seed)
    return hypersphere_metrics(x, y, labels, normalize=normalize, t=t, alpha=alpha, max_pairs=max_pairs, seed=seed)


@dataclass(frozen=True)
class MeasureOptions:
    """How the integrations measure: the options of :func:`hypersphere_metrics`, checked once when created.

    Examples:
        >>> MeasureOptions(t=3).t
        3.0
        >>> MeasureOptions(max_pairs=0)
        Traceback (most recent call last):
        ...
        ValueError: `max_pairs` must be a positive integer, got 0
    """

    normalize: bool = True
    t: float = 2.0
    alpha: float = 2.0
    max_pairs: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "normalize", bool(self.normalize))
        object.__setattr__(self, "t", check_positive(self.t, "t"))
        object.__setattr__(self, "alpha", check_positive(self.alpha, "alpha"))
        if self.max_pairs is not None:
            object.__setattr__(self, "max_pairs", check_positive_int(self.max_pairs, "max_pairs"))
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise OptionError(f"`seed` must be an integer, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))

    def metrics(
        self,
        x: torch.Tensor | np.ndarray,
        y: torch.Tensor | np.ndarray,
        labels: torch.Tensor | np.ndarray | None = None,
    ) -> dict[str, float]:
        """:func:`hypersphere_metrics` with these options."""
        return hypersphere_metrics(
            x, y, labels, normalize=self.normalize, t=self.t, alpha=self.alpha, max_pairs=self.max_pairs, seed=self.seed
        )

    def measure(
        self,
        model: nn.Module,
        data: Iterable[Any],
        *,
        views: Views | None = None,
        embed: Embed | None = None,
        device: torch.device | str | None = None,
    ) -> dict[str, float]:
        """:func:`measure_pairs` with these options."""
        x, y, labels = embed_pairs(model, data, views=views, embed=embed, device=device, seed=self.seed)
        return self.metrics(x, y, labels)


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _split_batch(
    batch: Any, views: Views | None, device: torch.device, index: int
) -> tuple[Any, Any, torch.Tensor | None]:
    """``(x_view, y_view, labels or None)`` of one batch, the views on ``device``."""
    if views is None:
        if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
            raise ValueError(
                f"held-out batch {index} must be (x_view, y_view) or (x_view, y_view, labels), "
                f"got {_describe(batch)}; pass `views` to make the two views from each batch of inputs"
            )
        _check_second_view(batch, index)
        labels = batch[2] if len(batch) == 3 else None
        return _to_device(batch[0], device), _to_device(batch[1], device), labels
    if isinstance(batch, (tuple, list)):
        if len(batch) != 2:
            raise ValueError(
                f"with `views`, held-out batch {index} must be inputs or (inputs, labels), got {_describe(batch)}"
            )
        inputs, labels = batch
    else:
        inputs, labels = batch, None
    pair = views(_to_device(inputs, device))
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise OptionError(f"`views`(inputs) must return two views (x_view, y_view), got {_describe(pair)}")
    return pair[0], pair[1], labels


def _check_second_view(batch: tuple[Any, ...] | list[Any], index: int) -> None:
    """A batch of ``(inputs, integer labels)`` read as two views would fail deep inside the model: say why here."""
    first, second = batch[0], batch[1]
    if isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor):
        if not second.is_floating_point() or second.shape[0] != first.shape[0] or second.dim() != first.dim():
            raise OptionError(
                f"held-out batch {index} looks like (inputs, labels), not two views: its second element is a "
                f"{str(second.dtype).replace('torch.', '')} tensor of shape {tuple(second.shape)} beside inputs of "
                f"shape {tuple(first.shape)}; pass `views`, a function inputs -> (x_view, y_view), or give batches "
                f"(x_view, y_view) or (x_view, y_view, labels)"
            )


def _describe(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, Mapping):
        return {key: _to_device(item, device) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_to_device(item, device) for item in value)
    return value


def _embeddings(model: nn.Module, inputs: Any, embed: Embed | None) -> torch.Tensor:
    if embed is not None:
        output = embed(model, inputs)
    elif isinstance(inputs, Mapping):
        output = model(**inputs)
    else:
        output = model(inputs)
    if isinstance(output, Mapping):
        key = next((key for key in _EMBEDDING_KEYS if output.get(key) is not None), None)
        if key is None:
            raise ValueError(
                f"the model returned a dict without any of {', '.join(_EMBEDDING_KEYS)} (keys: "
                f"{', '.join(map(str, output))}); pass `embed`, a function (model, inputs) -> (B, d) embeddings"
            )
        output = output[key]
    elif isinstance(output, (tuple, list)) and output:
        output = output[0]
    if not isinstance(output, torch.Tensor) or output.dim() != 2 or not output.is_floating_point():
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(
            f"the embeddings of a batch must be a 2-D floating-point (B, d) tensor, got {shape}; "
            f"pass `embed`, a function (model, inputs) -> (B, d) embeddings, to pick or pool them"
        )
    output = output.detach()
    return (output if output.dtype == torch.float64 else output.float()).cpu()
