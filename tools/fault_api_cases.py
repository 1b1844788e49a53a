"""The fault campaign's API cases: the integrations' public constructors and calls × bad values.

Each case is a zero-argument function; the contract is that it returns, or raises a ``ValueError`` or
``TypeError`` (``OptionError`` is one) with a one-line message, never another exception (an ``IndexError`` or
``RuntimeError`` from deep inside), and never returns a non-finite number for finite inputs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

#: Bad values of a number argument: NaN, infinities, negative, zero, huge, a bool, a string, None, a list.
BAD_NUMBERS: tuple[Any, ...] = (math.nan, math.inf, -math.inf, -1, 0, 1e30, True, "2", None, [2.0])
#: Bad values of a count argument (the numbers above and a fraction).
BAD_COUNTS: tuple[Any, ...] = (*BAD_NUMBERS, 2.5, 10**30)


def _unit(rows: int, dim: int = 4, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(rows, dim, generator=generator), dim=1)


def _bad_tensors() -> dict[str, Any]:
    """Bad embeddings of 8 rows × 4 (or not)."""
    good = _unit(8)
    nan, inf = good.clone(), good.clone()
    nan[0, 0], inf[1, 1] = math.nan, math.inf
    return {
        "nan": nan,
        "inf": inf,
        "1-D": good[:, 0],
        "3-D": good[None],
        "0 rows": good[:0],
        "1 row": good[:1],
        "0 columns": good[:, :0],
        "int": torch.ones(8, 4, dtype=torch.int64),
        "bool": torch.ones(8, 4, dtype=torch.bool),
        "complex": good.to(torch.complex64),
        "meta": torch.empty(8, 4, device="meta"),
        "lists": good.tolist(),
        "None": None,
        "string": "embeddings",
        "zeros": torch.zeros(8, 4),
        "other rows": _unit(5),
    }


def _bad_labels() -> dict[str, Any]:
    return {
        "wrong length": torch.arange(5),
        "2-D": torch.zeros(8, 2, dtype=torch.int64),
        "fractions": torch.full((8,), 0.5),
        "nan": torch.full((8,), math.nan),
        "strings": ["a"] * 8,
        "negative -2": torch.full((8,), -2),
    }


def metric_cases() -> Iterator[tuple[str, str, Callable[[], Any]]]:
    """``HypersphereMetrics`` (torchmetrics): its options, then ``update`` with bad embeddings and labels."""
    from aligniform.integrations.torchmetrics import HypersphereMetrics

    for option in ("t", "alpha", "max_pairs", "seed"):
        for value in BAD_COUNTS if option in ("max_pairs", "seed") else BAD_NUMBERS:
            yield (
                "torchmetrics",
                f"HypersphereMetrics({option}={value!r})",
                functools.partial(HypersphereMetrics, **{option: value}),
            )

    def update(x: Any, y: Any, labels: Any = None) -> Any:
        metric = HypersphereMetrics()
        metric.update(x, y, labels)
        return metric.compute()

    good = _unit(8)
    for name, value in _bad_tensors().items():
        yield "torchmetrics", f"update(x={name})", functools.partial(update, value, good)
        yield "torchmetrics", f"update(y={name})", functools.partial(update, good, value)
    for name, value in _bad_labels().items():
        yield "torchmetrics", f"update(labels={name})", functools.partial(update, good, good, value)

    def compute_empty() -> Any:
        return HypersphereMetrics().compute()

    def other_width() -> Any:
        metric = HypersphereMetrics()
        metric.update(good, good)
        metric.update(_unit(8, 6), _unit(8, 6))
        return metric.compute()

    yield "torchmetrics", "compute() before update", compute_empty
    yield "torchmetrics", "update at another width", other_width


def _tiny_data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(_unit(8, 4, seed), _unit(8, 4, seed + 1)) for seed in range(2)]


def monitor_cases() -> Iterator[tuple[str, str, Callable[[], Any]]]:
    """The Lightning ``HypersphereMonitor`` and the HF ``HypersphereCallback``: constructors × bad arguments."""
    from aligniform.integrations.lightning import HypersphereMonitor
    from aligniform.integrations.transformers import HypersphereCallback

    data = _tiny_data()
    for kind, name, counts in (
        (HypersphereMonitor, "lightning", ("every_n_epochs", "every_n_steps")),
        (HypersphereCallback, "transformers", ("every_n_steps",)),
    ):
        for option in (*counts, "max_pairs", "seed"):
            for value in BAD_COUNTS:
                yield name, f"{kind.__name__}({option}={value!r})", functools.partial(kind, data, **{option: value})
        for option in ("t", "alpha"):
            for value in BAD_NUMBERS:
                yield name, f"{kind.__name__}({option}={value!r})", functools.partial(kind, data, **{option: value})
        for option in ("views", "embed"):
            for value in (5, "views", [1, 2]):
                yield name, f"{kind.__name__}({option}={value!r})", functools.partial(kind, data, **{option: value})


def sentence_cases() -> Iterator[tuple[str, str, Callable[[], Any]]]:
    """sentence-transformers: ``HypersphereEvaluator``, ``ObjectiveLoss`` and ``AlignUniformLoss`` × bad arguments."""
    from aligniform.integrations.sentence_transformers import AlignUniformLoss, HypersphereEvaluator, ObjectiveLoss

    texts = ["a cat", "a dog", "the sea", "a tree"]
    evaluator = functools.partial(HypersphereEvaluator, texts, texts[::-1])
    for value in BAD_COUNTS:
        yield (
            "sentence-transformers",
            f"Evaluator(batch_size={value!r})",
            functools.partial(evaluator, batch_size=value),
        )
    for option in ("t", "alpha", "max_pairs", "seed"):
        for value in BAD_NUMBERS:
            yield (
                "sentence-transformers",
                f"Evaluator({option}={value!r})",
                functools.partial(evaluator, **{option: value}),
            )
    for value in ("", "bogus", None, 3):
        yield (
            "sentence-transformers",
            f"Evaluator(primary_metric={value!r})",
            functools.partial(evaluator, primary_metric=value),
        )
    for name, (first, second) in {
        "unequal lists": (texts, texts[:3]),
        "one pair": (texts[:1], texts[:1]),
        "not strings": ([1, 2], [3, 4]),
        "a string": ("abcd", "efgh"),
        "None": (None, None),
    }.items():
        yield "sentence-transformers", f"Evaluator({name})", functools.partial(HypersphereEvaluator, first, second)
    for name, labels in {**_bad_labels(), "floats": [0.5, 1.5, 2.5, 3.5], "mixed": [1, "a", 2, "b"]}.items():
        yield "sentence-transformers", f"Evaluator(labels={name})", functools.partial(evaluator, labels)
    model = torch.nn.Identity()
    from tools.fault_cases import OBJECTIVES

    for spec in OBJECTIVES:
        yield "sentence-transformers", f"ObjectiveLoss({spec[:20]!r})", functools.partial(ObjectiveLoss, model, spec)
    for option in ("alpha", "t", "align_weight", "uniform_weight"):
        for value in BAD_NUMBERS:
            yield (
                "sentence-transformers",
                f"AlignUniformLoss({option}={value!r})",
                functools.partial(AlignUniformLoss, model, **{option: value}),
            )


def common_cases() -> Iterator[tuple[str, str, Callable[[], Any]]]:
    """``hypersphere_metrics`` (what every integration measures with) × bad embeddings and options."""
    from aligniform.integrations.common import hypersphere_metrics

    good = _unit(8)
    for name, value in _bad_tensors().items():
        yield "common", f"hypersphere_metrics(x={name})", functools.partial(hypersphere_metrics, value, good)
    for name, value in _bad_labels().items():
        yield "common", f"hypersphere_metrics(labels={name})", functools.partial(hypersphere_metrics, good, good, value)
    for option in ("t", "alpha", "max_pairs", "seed"):
        for value in BAD_NUMBERS:
            yield (
                "common",
                f"hypersphere_metrics({option}={value!r})",
                functools.partial(hypersphere_metrics, good, good, **{option: value}),
            )


def api_cases() -> list[tuple[str, str, Callable[[], Any]]]:
    """Every API case: (integration, label, call)."""
    return [case for group in (metric_cases, monitor_cases, sentence_cases, common_cases) for case in group()]
