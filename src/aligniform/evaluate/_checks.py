"""Argument checks shared by the evaluation protocols."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import torch

from .._validation import check_feature_structure, check_feature_values, check_labels

Features: TypeAlias = torch.Tensor | np.ndarray
"""An ``(N, D)`` feature matrix, as a tensor or a numpy array."""

Labels: TypeAlias = torch.Tensor | np.ndarray | Sequence[int]
"""One integer class label per row (-1: unlabelled)."""

Device: TypeAlias = torch.device | str
"""Where a computation runs: a :class:`torch.device` or its name."""


def check_labelled_features(
    z: Features, labels: Labels, z_name: str, labels_name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate an ``(N, d)`` feature matrix with one integer label per row.

    Features need not be unit-norm (probes also run on hidden layers and raw
    pixels). Labels are moved to the features' device.
    """
    z = check_feature_structure(z, z_name)
    z = check_feature_values(z, z_name, require_unit_norm=False)
    labels = check_labels(labels, z.shape[0], labels_name).to(z.device)
    return z, labels


def drop_unlabelled(z: torch.Tensor, labels: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the rows whose label is >= 0 (-1 marks an unlabelled sample); raise if none is left."""
    keep = labels >= 0
    if not bool(keep.any()):
        raise ValueError(f"{name} has no labelled sample (every label is negative, i.e. unlabelled)")
    if bool(keep.all()):
        return z, labels
    return z[keep], labels[keep]


def check_same_width(train_z: torch.Tensor, test_z: torch.Tensor) -> None:
    """Train and test features must come from the same layer."""
    if train_z.shape[1] != test_z.shape[1]:
        raise ValueError(
            f"test_z must have the same feature width as train_z ({train_z.shape[1]}), got {test_z.shape[1]}"
        )
