"""Downstream evaluation of frozen encoders: linear probe, k-NN, mean classifier, hypersphere metrics.

The protocols follow Wang & Isola (2020, App. B.1): a linear classifier on
frozen features (Adam, lr 1e-3, betas (0.5, 0.999), batch 128, 100 epochs,
lr x0.2 at epochs 60 and 80) and 5-NN by cosine similarity; plus the mean
classifier of Arora et al. (2019). See ``docs/evaluation.md``.

Examples:
    >>> from aligniform.data import load_dataset
    >>> from aligniform.evaluate import raw_pixel_baselines, LinearProbeConfig
    >>> train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    >>> scores = raw_pixel_baselines(train, test, probe_config=LinearProbeConfig.short())
    >>> sorted(scores)
    ['knn_acc', 'linear_acc', 'mean_classifier_acc']
"""

from .batchnorm import BATCHNORM_MODES, recomputed_batchnorm
from .features import extract_features, frozen, seeded_global_rng
from .knn import knn_accuracy, knn_predict
from .linear import (
    LinearProbe,
    LinearProbeConfig,
    fit_linear_probe,
    linear_probe_accuracy,
    linear_probe_on_augmented_images,
)
from .protocols import (
    EVALUATION_PROTOCOLS,
    check_protocols,
    evaluate_encoder,
    hypersphere_metrics,
    raw_pixel_baselines,
)
from .views import embed_view_pairs

__all__ = [
    "BATCHNORM_MODES",
    "EVALUATION_PROTOCOLS",
    "LinearProbe",
    "LinearProbeConfig",
    "check_protocols",
    "embed_view_pairs",
    "evaluate_encoder",
    "extract_features",
    "fit_linear_probe",
    "frozen",
    "hypersphere_metrics",
    "knn_accuracy",
    "knn_predict",
    "linear_probe_accuracy",
    "linear_probe_on_augmented_images",
    "raw_pixel_baselines",
    "recomputed_batchnorm",
    "seeded_global_rng",
]
