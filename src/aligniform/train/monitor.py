"""A run's held-out monitoring: what it measures (:func:`held_out_metrics`) and, by default, how often.

The monitoring trains nothing: it passes the bank through the encoder
twice (BatchNorm statistics recomputed on it, then its features), the validation images once, and their two fixed
augmented views once each, all without gradient. On mnist5k that was a third of an epoch's training time, so
monitoring every epoch made ``aligniform train`` 0.77 times as fast as a bare loop of the same training
(docs/benchmarks.md). Unless the config asks for a cadence, a run monitors every :func:`monitoring_cadence`-th
epoch (and at the last): the fewest epochs apart that keep the monitoring's passes within
:data:`MONITOR_SHARE` of the training's, counted in images through the encoder. The cadence depends only on the
data's sizes, the encoder having BatchNorm and the number of processes, so a run and its resume agree on it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..build import TrainingData
from ..evaluate import embed_view_pairs, extract_features, knn_accuracy, recomputed_batchnorm
from ..evaluate.batchnorm import MAX_IMAGES
from ..metrics import alignment, uniformity

VALIDATION_SEED = 12345  # fixed views for the held-out metrics, so epochs are comparable

#: The share of the training's encoder passes the monitoring may take (so the loop keeps >= 0.9 of a bare one).
MONITOR_SHARE = 0.08
#: Encoder passes per trained image and epoch, in forward-pass equivalents: two views, each a forward and a backward
#: (a backward costs about two forwards).
TRAINING_PASSES = 6


def monitoring_cadence(trained_images: int, bank_images: int, val_images: int, batchnorm: bool) -> int:
    """The default ``validate_every``: monitoring within :data:`MONITOR_SHARE` of the training's encoder passes.

    Args:
        trained_images: images one process trains on per epoch (its steps times its batch).
        bank_images: the monitor's bank (the k-NN's labelled set).
        val_images: the monitor's validation images.
        batchnorm: whether the encoder has BatchNorm (then its statistics are recomputed on the bank first, on at
            most :data:`~aligniform.evaluate.batchnorm.MAX_IMAGES` of it).

    Returns:
        Epochs between two monitored epochs, at least 1.

    Examples:
        >>> monitoring_cadence(trained_images=3584, bank_images=3600, val_images=400, batchnorm=True)  # mnist5k
        5
        >>> monitoring_cadence(trained_images=44800, bank_images=45000, val_images=5000, batchnorm=True)  # cifar10
        4
    """
    statistics = min(bank_images, MAX_IMAGES) if batchnorm else 0
    monitoring = statistics + bank_images + 3 * val_images  # the val features, then its two views
    training = TRAINING_PASSES * max(trained_images, 1)
    return max(1, math.ceil(monitoring / (MONITOR_SHARE * training)))


def cadence_text(validate_every: int, epochs: int) -> str:
    """How a run with the default cadence announces it (``validate_every`` unset).

    Examples:
        >>> cadence_text(5, 30)
        "every 5 epochs and at the last (validate_every unset: within 8% of the training's encoder passes)"
        >>> cadence_text(1, 30)
        "every epoch (validate_every unset: within 8% of the training's encoder passes)"
        >>> cadence_text(5, 3)
        "at the last epoch only (validate_every unset: within 8% of the training's encoder passes)"
    """
    if validate_every == 1:
        when = "every epoch"
    elif epochs <= validate_every:
        when = "at the last epoch only"
    else:
        when = f"every {validate_every} epochs and at the last"
    return f"{when} (validate_every unset: within {MONITOR_SHARE:.0%} of the training's encoder passes)"


@torch.no_grad()
def held_out_metrics(
    model: nn.Module,
    data: TrainingData,
    layer: str,
    transform: nn.Module,
    augmentation: nn.Module,
    knn_k: int,
    device: torch.device,
) -> dict[str, float]:
    """5-NN accuracy of val against the bank at ``layer``; alignment of val's view pairs, uniformity of val's images.

    As in the final evaluation, BatchNorm uses its inputs' exact statistics over the (clean) bank images for these
    measurements (:func:`~aligniform.evaluate.recomputed_batchnorm`); the running averages over the last augmented
    batches made the held-out uniformity jump by up to 0.8 between epochs.
    """
    with recomputed_batchnorm(model, data.bank.images, transform, device=device):
        bank = extract_features(model, data.bank.images, transform, [layer], device=device)
        layers = list(dict.fromkeys([layer, "output"]))
        val = extract_features(model, data.val.images, transform, layers, device=device)
        # Fixed views (same every epoch, so epochs compare); the training RNG stream is left as it was.
        x, y = embed_view_pairs(model, data.val.images, augmentation, seed=VALIDATION_SEED, device=device)
    return {
        "val_alignment": alignment(x, y),
        "val_uniformity": uniformity(val["output"], max_pairs=500_000),  # the images, as the final evaluation
        "knn_acc": knn_accuracy(bank[layer], data.bank.labels, val[layer], data.val.labels, k=knn_k),
    }
