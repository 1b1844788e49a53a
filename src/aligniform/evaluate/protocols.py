"""One call that evaluates an encoder: downstream accuracies plus the representation metrics."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING

import torch
from torch import nn

from .. import metrics
from ..metric_registry import measure
from ..models.base import OUTPUT_LAYER, resolve_eval_layer
from ._checks import Device
from .batchnorm import check_batchnorm_mode, recomputed_batchnorm
from .features import extract_features
from .knn import knn_accuracy
from .linear import LinearProbeConfig, linear_probe_accuracy, linear_probe_on_augmented_images
from .views import embed_view_pairs

if TYPE_CHECKING:
    from ..data import ImageDataset

EVALUATION_PROTOCOLS: tuple[str, ...] = ("linear", "knn", "mean")
"""Valid ``protocols`` of :func:`evaluate_encoder`: linear probe, k-NN, Arora et al.'s mean classifier."""

PROTOCOL_METRICS: tuple[str, ...] = ("alignment", "uniformity", "tolerance", "effective_rank")
"""The registry metrics (:data:`aligniform.metric_registry.METRICS`) :func:`evaluate_encoder` reports."""


def evaluate_encoder(
    encoder: nn.Module,
    train_set: ImageDataset,
    test_set: ImageDataset,
    *,
    layer: str | None = None,
    protocols: Sequence[str] | str = EVALUATION_PROTOCOLS,
    eval_transform: nn.Module,
    augmentation: nn.Module,
    probe_config: LinearProbeConfig | None = None,
    k: int = 5,
    device: Device = "cpu",
    batch_size: int = 256,
    paper_probe: bool = False,
    max_pairs: int | None = None,
    seed: int = 0,
    batchnorm: str = "running",
) -> dict[str, float]:
    """Evaluate a frozen encoder: downstream accuracies on ``layer`` and hypersphere metrics on the test set.

    Accuracies (fractions in [0, 1]; training on ``train_set``, testing on
    ``test_set``; unlabelled samples, label -1, are left out):

    * ``linear_acc`` -- linear probe (:func:`linear_probe_accuracy` on
      features of eval-transformed images; with ``paper_probe=True`` the
      paper's protocol on freshly augmented images,
      :func:`linear_probe_on_augmented_images`);
    * ``knn_acc`` -- cosine ``k``-NN on ``layer``;
    * ``mean_classifier_acc`` -- Arora et al.'s mean classifier on ``layer``
      (rows L2-normalised first; a no-op on the output layer);
    * ``knn_acc_output`` -- cosine ``k``-NN on the ``"output"`` layer (always
      reported: Wang & Isola give k-NN on both the output and fc7).

    Metrics, on the ``"output"`` layer of the test set (all labelled or not):
    ``alignment`` (α = 2, between two augmented views of each test image),
    ``uniformity`` (t = 2, eval-transformed images; exact, or sampled from
    ``max_pairs`` pairs), ``tolerance`` (same-class pairs, test labels) and
    ``effective_rank``.

    The encoder runs in eval mode without gradients and gets its previous
    mode back. The random augmentations use the global RNG seeded with
    ``seed`` and restored afterwards, so the result is reproducible and an
    evaluation inside a training run does not change that run's random stream.

    Args:
        encoder: an :class:`~aligniform.models.Encoder`, already on ``device``.
        train_set: :class:`~aligniform.data.ImageDataset` the classifiers are fitted on.
        test_set: :class:`~aligniform.data.ImageDataset` they are scored on.
        layer: the layer for the accuracies; default ``encoder.default_eval_layer``.
        protocols: any of ``"linear"``, ``"knn"``, ``"mean"`` (none: metrics only).
        eval_transform: deterministic transform (e.g. ``build_eval_transform``).
        augmentation: random transform making the alignment pairs (and the
            ``paper_probe`` training inputs).
        probe_config: linear-probe hyper-parameters (``None``: the paper's 100 epochs).
        k: neighbours of the k-NN classifiers.
        device: where everything runs.
        batch_size: images per forward pass.
        paper_probe: use the paper's augmented-images linear probe (slow).
        max_pairs: sample this many pairs for uniformity instead of all pairs.
        seed: seed of the augmentations (and of the uniformity pair sampling).
        batchnorm: ``"running"`` evaluates the encoder with its own BatchNorm
            statistics; ``"recompute"`` first replaces them, for this evaluation
            only, by the exact statistics over ``train_set``'s labelled images
            under ``eval_transform`` (:func:`~aligniform.evaluate.batchnorm.recomputed_batchnorm`),
            as :func:`aligniform.train.run` and ``aligniform eval`` do for the
            encoders aligniform trains: their running statistics average
            augmented training batches, which biases and blurs the metrics of
            clean images.

    Returns:
        ``{name: float}``: the requested accuracies, ``knn_acc_output``,
        ``alignment``, ``uniformity``, ``tolerance`` and ``effective_rank``.

    Raises:
        ValueError: on an unknown protocol (the message lists the valid ones), layer or ``batchnorm`` mode.

    Examples:
        >>> from aligniform.data import load_dataset, dataset_info
        >>> from aligniform.models import build_model
        >>> from aligniform.augment import build_augmentation, build_eval_transform
        >>> info = dataset_info("digits")
        >>> model = build_model("convnet", dim=16, in_channels=1, image_size=8)
        >>> results = evaluate_encoder(
        ...     model, load_dataset("digits", split="train"), load_dataset("digits", split="test"),
        ...     eval_transform=build_eval_transform(8, info.mean, info.std, resize=8),
        ...     augmentation=build_augmentation("digits", 8, info.mean, info.std),
        ...     probe_config=LinearProbeConfig.short())
        >>> sorted(results)[:3]
        ['alignment', 'effective_rank', 'knn_acc']
    """
    protocols = check_protocols(protocols)
    batchnorm = check_batchnorm_mode(batchnorm)
    layer = resolve_eval_layer(encoder, layer)
    layers = list(dict.fromkeys([layer, OUTPUT_LAYER]))
    train_images, train_labels = labelled_part(train_set, "train_set")

    def features(images: torch.Tensor, transform: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
        return extract_features(encoder, images, transform, names, batch_size, device)

    # "recompute": every BatchNorm normalises with its inputs' exact statistics over the (clean) training images,
    # not with the running averages over the last augmented training batches (see evaluate/batchnorm.py).
    statistics = (
        recomputed_batchnorm(encoder, train_images, eval_transform, batch_size=batch_size, device=device)
        if batchnorm == "recompute"
        else nullcontext(encoder)
    )
    with statistics:
        train = features(train_images, eval_transform, layers)
        test = features(test_set.images, eval_transform, layers)
        test_labels = test_set.labels
        results: dict[str, float] = {}
        if "linear" in protocols:
            if paper_probe:
                results["linear_acc"] = linear_probe_on_augmented_images(
                    encoder, layer, train_set, test_set, augmentation, eval_transform, probe_config, device, batch_size
                )
            else:
                results["linear_acc"] = linear_probe_accuracy(
                    train[layer], train_labels, test[layer], test_labels, probe_config, device
                )
        if "knn" in protocols:
            results["knn_acc"] = knn_accuracy(train[layer], train_labels, test[layer], test_labels, k)
        if "mean" in protocols:
            results["mean_classifier_acc"] = _mean_classifier_accuracy(
                train[layer], train_labels, test[layer], test_labels
            )
        if "knn" in protocols and layer == OUTPUT_LAYER:
            results["knn_acc_output"] = results["knn_acc"]
        else:
            results["knn_acc_output"] = knn_accuracy(
                train[OUTPUT_LAYER], train_labels, test[OUTPUT_LAYER], test_labels, k
            )
        view_a, view_b = embed_view_pairs(
            encoder, test_set.images, augmentation, seed=seed, batch_size=batch_size, device=device
        )
        results.update(hypersphere_metrics(test[OUTPUT_LAYER], test_labels, view_a, view_b, max_pairs, seed))
    return results


def hypersphere_metrics(
    z: torch.Tensor,
    labels: torch.Tensor,
    view_a: torch.Tensor,
    view_b: torch.Tensor,
    max_pairs: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Alignment (α = 2) of the view pairs; uniformity (t = 2), tolerance and effective rank of ``z``.

    The evaluation protocol's choice among the registry's metrics
    (:data:`PROTOCOL_METRICS`): the one-sided metrics are measured on the
    clean, eval-transformed images ``z`` (``points`` of
    :func:`~aligniform.metric_registry.measure`), not on the augmented views.

    Examples:
        >>> import torch
        >>> z = torch.eye(4)
        >>> hypersphere_metrics(z, torch.tensor([0, 0, 1, 1]), z, z)["alignment"]
        0.0
    """
    values = measure(
        view_a, view_b, labels, points=z, names=PROTOCOL_METRICS, t=2.0, alpha=2.0, max_pairs=max_pairs, seed=seed
    )
    return {name: float(value) for name, value in values.items() if value is not None}


def raw_pixel_baselines(
    train_set: ImageDataset,
    test_set: ImageDataset,
    k: int = 5,
    probe_config: LinearProbeConfig | None = None,
    device: Device = "cpu",
) -> dict[str, float]:
    """Accuracies of classifiers on flattened raw pixels scaled to [0, 1]: context for encoder results.

    Args:
        train_set: :class:`~aligniform.data.ImageDataset` to fit on (unlabelled images skipped).
        test_set: :class:`~aligniform.data.ImageDataset` to score on.
        k: neighbours of the cosine k-NN classifier.
        probe_config: linear-probe hyper-parameters (``None``: the paper's).
        device: where the linear probe trains.

    Returns:
        ``{"linear_acc", "knn_acc", "mean_classifier_acc"}`` as fractions in [0, 1].

    Examples:
        >>> from aligniform.data import load_dataset
        >>> train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
        >>> raw_pixel_baselines(train, test)["knn_acc"] > 0.9
        True
    """
    train_images, train_labels = labelled_part(train_set, "train_set")
    train_z, test_z = _flat_pixels(train_images), _flat_pixels(test_set.images)
    test_labels = test_set.labels
    return {
        "linear_acc": linear_probe_accuracy(train_z, train_labels, test_z, test_labels, probe_config, device),
        "knn_acc": knn_accuracy(train_z, train_labels, test_z, test_labels, k),
        "mean_classifier_acc": _mean_classifier_accuracy(train_z, train_labels, test_z, test_labels),
    }


def check_protocols(protocols: Sequence[str] | str) -> tuple[str, ...]:
    """Return the requested protocols, de-duplicated; raise on unknown names.

    An empty selection is allowed: :func:`evaluate_encoder` then reports only
    ``knn_acc_output`` and the hypersphere metrics.

    Examples:
        >>> check_protocols("knn")
        ('knn',)
    """
    names = (protocols,) if isinstance(protocols, str) else tuple(protocols)
    unknown = [name for name in names if name not in EVALUATION_PROTOCOLS]
    if unknown:
        raise ValueError(
            f"protocols must be chosen from {', '.join(EVALUATION_PROTOCOLS)}; got {protocols!r} "
            f"(unknown: {', '.join(map(repr, unknown))})"
        )
    return tuple(dict.fromkeys(names))


def labelled_part(dataset: ImageDataset, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of the labelled samples (label >= 0) of an ImageDataset.

    Done before feature extraction: STL-10's ``train+unlabeled`` split is
    95 % unlabelled images that no supervised protocol could use.
    """
    keep = dataset.labels >= 0
    if not bool(keep.any()):
        raise ValueError(f"{name} has no labelled sample (all labels are -1)")
    if bool(keep.all()):
        return dataset.images, dataset.labels
    return dataset.images[keep], dataset.labels[keep]


def _mean_classifier_accuracy(
    train_z: torch.Tensor, train_labels: torch.Tensor, test_z: torch.Tensor, test_labels: torch.Tensor
) -> float:
    """Mean classifier on L2-normalised rows (a no-op for the output layer).

    On hidden layers (non-negative ReLU features) or pixels, argmax_c μ_cᵀf(x)
    on raw rows is dominated by the class whose mean has the largest norm: a
    random ConvNet's backbone scores 0.10 on mnist5k that way, 0.68 with
    normalised rows, so every layer is scored on the sphere, as Arora et al.'s
    f is.
    """
    # metrics.mean_classifier_accuracy counts an unlabelled test sample as an error; leave them out.
    keep = test_labels >= 0
    return metrics.mean_classifier_accuracy(train_z, train_labels, test_z[keep], test_labels[keep], normalize=True)


def _flat_pixels(images: torch.Tensor) -> torch.Tensor:
    return images.reshape(len(images), -1).float() / 255.0
