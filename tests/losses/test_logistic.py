"""Arora et al.'s unsupervised logistic loss against a hand-written float64 loop."""

import math

import pytest
import torch
import torch.nn.functional as F

from aligniform.losses import arora_logistic_loss
from tests.support.sphere import unit_rows


def test_arora_logistic_loss_matches_a_hand_written_loop():
    generator = torch.Generator().manual_seed(0)
    anchor, positive = unit_rows(6, 5, generator), unit_rows(6, 5, generator)
    negatives = F.normalize(torch.randn(6, 3, 5, generator=generator, dtype=torch.float64), dim=-1)

    def by_hand(k):
        total = 0.0
        for i in range(6):
            positive_score = sum(anchor[i, d].item() * positive[i, d].item() for d in range(5))
            total += math.log(
                1
                + sum(
                    math.exp(sum(anchor[i, d].item() * negatives[i, j, d].item() for d in range(5)) - positive_score)
                    for j in range(k)
                )
            )
        return total / 6

    assert arora_logistic_loss(anchor, positive, negatives[:, 0]).item() == pytest.approx(by_hand(1), abs=1e-12)
    assert arora_logistic_loss(anchor, positive, negatives).item() == pytest.approx(by_hand(3), abs=1e-12)
