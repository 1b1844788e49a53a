"""The synthetic data models of the studies: class frequencies and collision rates within binomial tolerance."""

import math

import pytest
import torch

from aligniform.data.synthetic import LatentClassModel


def test_latent_class_samples_follow_class_probabilities():
    probs = [0.5, 0.3, 0.15, 0.05]
    model = LatentClassModel(4, dim=3, within_class_spread=0.1, class_probs=probs, seed=1)
    n = 40_000
    x, labels = model.sample(n)
    assert x.shape == (n, 3)
    frequencies = torch.bincount(labels, minlength=4).double() / n
    for p, frequency in zip(probs, frequencies.tolist()):
        assert abs(frequency - p) < 4 * math.sqrt(p * (1 - p) / n)
    # Samples sit around their class mean with the requested spread.
    assert (x - model.class_means[labels]).std().item() == pytest.approx(0.1, rel=0.05)


def test_latent_class_collision_rate_matches_collision_probability():
    model = LatentClassModel(5, dim=2, within_class_spread=1.0, class_probs=[4, 3, 1, 1, 1], seed=0)
    tau = model.collision_probability()
    assert tau == pytest.approx(0.16 + 0.09 + 0.01 * 3)
    n = 40_000
    anchor, positive, labels = model.positive_pairs(n)
    _, negative_labels = model.negatives(n)
    rate = (labels == negative_labels).double().mean().item()
    assert abs(rate - tau) < 4 * math.sqrt(tau * (1 - tau) / n)
    assert not torch.equal(anchor, positive)  # two independent draws from the same class
