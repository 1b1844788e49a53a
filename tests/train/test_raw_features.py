"""Objectives that want raw features (``Objective.unit_features`` False, e.g. barlow_twins) get them in training."""

import copy

import pytest
import torch

from aligniform.config import TrainConfig
from aligniform.train import Trainer

pytestmark = pytest.mark.usefixtures("single_thread")


def _trainer(tmp_path, objective, **options):
    config = TrainConfig(
        dataset="digits", dim=16, batch_size=128, epochs=1, objective=objective, linear_probe="none",
        progress=False, seed=3, out=str(tmp_path / "run"), **options,
    )  # fmt: skip
    return Trainer(config)


def test_barlow_twins_trains_on_raw_features_and_its_loss_decreases(tmp_path):
    trainer = _trainer(tmp_path, "barlow_twins")
    images = trainer.train_images[:8].float()
    with torch.no_grad():
        raw = trainer._embed(images)
        unit = trainer.model(images)
    assert not torch.allclose(raw.norm(dim=1), torch.ones(8), atol=1e-3)  # what the objective sees
    assert torch.allclose(unit.norm(dim=1), torch.ones(8), atol=1e-5)  # what everything else sees
    losses = []
    step = trainer._train_step
    trainer._train_step = lambda *args, **kwargs: losses.append(step(*args, **kwargs)["loss"]) or {"loss": losses[-1]}
    trainer.fit()
    trainer.close()
    assert len(losses) == 10 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_unit_objectives_and_moco_keys_stay_on_the_sphere(tmp_path):
    trainer = _trainer(tmp_path, "align + uniform")
    assert trainer.raw_output is None
    images = trainer.train_images[:8].float()
    with torch.no_grad():
        assert torch.allclose(trainer._embed(images).norm(dim=1), torch.ones(8), atol=1e-5)
    moco = _trainer(tmp_path, "barlow_twins", moco=True, queue_size=256)
    with torch.no_grad():
        keys = moco._keys(images)
    assert not torch.allclose(keys.norm(dim=1), torch.ones(8), atol=1e-3)  # the key encoder's copy follows too
    assert copy.deepcopy(moco.model)(images).norm(dim=1).sub(1).abs().max() < 1e-5
