"""Learning-rate schedules and the per-step linear warm-up, checked against the plain formula."""

import math

import pytest
import torch

from aligniform.config import ConfigError, TrainConfig
from aligniform.train import Trainer
from aligniform.train.schedule import warmup_factor


def tiny_config(out, **overrides) -> TrainConfig:
    values = dict(dataset="digits", epochs=3, batch_size=256, dim=16, out=str(out), progress=False)
    values.update(linear_probe="none", **overrides)
    return TrainConfig(**values)


def recorded_lrs(config: TrainConfig) -> list[float]:
    """The lr of every optimiser step of a run (read just before the step is taken)."""
    trainer = Trainer(config)
    lrs: list[float] = []
    trainer.optimizer.register_step_pre_hook(lambda optimizer, *_: lrs.append(optimizer.param_groups[0]["lr"]))
    trainer.fit()
    return lrs


def test_warmup_factor_is_linear_then_one():
    assert [warmup_factor(step, 10) for step in (1, 5, 10, 11, 100)] == [0.1, 0.5, 1.0, 1.0, 1.0]
    assert warmup_factor(3, 0) == 1.0


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_warmup_ramps_every_step_then_follows_the_schedule(tmp_path, schedule):
    config = tiny_config(tmp_path / schedule, schedule=schedule, milestones=[2], lr_decay=0.5, warmup_epochs=1)
    lrs = recorded_lrs(config)
    steps = len(lrs) // config.epochs  # digits: 1,294 training images, batch 256 -> 5 steps an epoch
    assert steps == 5 and len(lrs) == 3 * steps
    base = config.lr * config.batch_size / 256
    # The paper-plain formula: scheduled lr of the epoch (cosine per epoch / × decay at milestones) × warm-up.
    for index, lr in enumerate(lrs):
        epoch, step = divmod(index, steps)
        if schedule == "cosine":
            scheduled = base * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
        else:
            scheduled = base * (0.5 if epoch + 1 > 2 else 1.0)
        expected = scheduled * min(1.0, (index + 1) / steps)
        assert lr == pytest.approx(expected, rel=1e-12), (index, schedule)


def test_no_warmup_leaves_the_schedule_untouched(tmp_path):
    lrs = recorded_lrs(tiny_config(tmp_path, schedule="step", milestones=[2], lr_decay=0.5, epochs=3))
    base = 0.12  # milestone 2: the lr changes once 2 epochs are done
    assert lrs == pytest.approx([base] * 10 + [base * 0.5] * 5, rel=1e-12)


def test_resumed_run_continues_its_warmup(tmp_path):
    whole = recorded_lrs(tiny_config(tmp_path / "whole", warmup_epochs=2, schedule="cosine", epochs=3))
    first = recorded_lrs(tiny_config(tmp_path / "cut", warmup_epochs=2, schedule="cosine", epochs=1))
    trainer = Trainer(tiny_config(tmp_path / "cut", warmup_epochs=2, schedule="cosine", epochs=3))
    rest: list[float] = []
    trainer.optimizer.register_step_pre_hook(lambda optimizer, *_: rest.append(optimizer.param_groups[0]["lr"]))
    trainer.fit(resume=True)
    # The cut run's first epoch followed a 1-epoch cosine; from epoch 2 the resumed run follows the 3-epoch one.
    assert first[:5] == pytest.approx([0.12 * (s + 1) / 10 for s in range(5)], rel=1e-12)
    assert rest == pytest.approx(whole[5:], rel=1e-12)


@pytest.mark.parametrize("value", [-1, 1.5, True])
def test_bad_warmup_is_a_config_error(value):
    with pytest.raises(ConfigError, match="warmup_epochs"):
        TrainConfig(warmup_epochs=value)


def test_warmup_keeps_lr_of_objective_parameters_in_step(tmp_path):
    # A learnable temperature has its own parameter group; it warms up with the encoder.
    config = tiny_config(tmp_path, objective="contrastive(tau=learn(0.2))", warmup_epochs=1, epochs=1)
    trainer = Trainer(config)
    seen: list[list[float]] = []
    trainer.optimizer.register_step_pre_hook(
        lambda optimizer, *_: seen.append(
            [group["lr"] / group.get("initial_lr", 1.0) for group in optimizer.param_groups]
        )
    )
    trainer.fit()
    assert len(seen[0]) == 2 and all(len(set(round(v, 12) for v in ratios)) == 1 for ratios in seen)
    assert torch.tensor([ratios[0] for ratios in seen]).diff().gt(0).all()
