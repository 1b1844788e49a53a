"""The held-out monitoring's default cadence: the formula, the trainer's use of it, and the option around it."""

import json
import math
from types import SimpleNamespace

import pytest

from aligniform.build import load_training_data
from aligniform.cli import main
from aligniform.config import ConfigError, TrainConfig
from aligniform.distributed import shard_indices
from aligniform.evaluate.batchnorm import MAX_IMAGES
from aligniform.train import Trainer
from aligniform.train.monitor import MONITOR_SHARE, TRAINING_PASSES, monitoring_cadence


def cadence_by_hand(trained: int, bank: int, val: int, batchnorm: bool) -> int:
    # Encoder passes, in images: BatchNorm statistics on the bank (at most MAX_IMAGES), the bank's features, val's
    # features and val's two views; against two views a trained image, each forward + backward (three forwards).
    monitoring = (min(bank, MAX_IMAGES) if batchnorm else 0) + bank + val + 2 * val
    epochs = 1
    while monitoring / (epochs * 2 * 3 * trained) > MONITOR_SHARE:
        epochs += 1
    return epochs


@pytest.mark.parametrize(
    ("trained", "bank", "val", "batchnorm"),
    [
        (3584, 3600, 400, True),  # mnist5k, batch 256
        (3584, 3600, 400, False),
        (1280, 1294, 144, True),  # digits
        (44800, 45000, 5000, True),  # cifar10, batch 256: the BatchNorm pass capped at MAX_IMAGES
        (1792, 3600, 400, True),  # mnist5k on two processes: each trains half
        (100_000, 10, 10, True),  # a large training set and a tiny monitor: every epoch
        (1, 10_000, 10_000, True),
    ],
)
def test_the_cadence_is_the_fewest_epochs_keeping_monitoring_within_its_share(trained, bank, val, batchnorm):
    assert TRAINING_PASSES == 6 and MONITOR_SHARE == 0.08
    assert monitoring_cadence(trained, bank, val, batchnorm) == cadence_by_hand(trained, bank, val, batchnorm)


def test_the_documented_cadences():
    assert monitoring_cadence(3584, 3600, 400, batchnorm=True) == 5  # mnist5k: docs/training.md
    assert monitoring_cadence(3584, 3600, 400, batchnorm=False) == 3
    assert monitoring_cadence(1792, 3600, 400, batchnorm=True) == 10  # two processes: rank 0 monitors alone
    assert monitoring_cadence(10**6, 1, 1, batchnorm=True) == 1


def test_the_option_defaults_to_unset_and_keeps_its_type_through_yaml(tmp_path):
    assert TrainConfig().validate_every is None
    for value in (None, 3):
        config = TrainConfig(dataset="digits", validate_every=value)
        config.to_yaml(tmp_path / "config.yaml")
        assert TrainConfig.from_yaml(tmp_path / "config.yaml").validate_every == value
    assert TrainConfig.from_dict({"validate_every": "4"}).validate_every == 4
    for wrong in (0, -2, 1.5, True):
        with pytest.raises(ConfigError, match="`validate_every`"):
            TrainConfig(validate_every=wrong)


def test_a_run_without_the_option_monitors_at_its_cadence_and_at_the_last_epoch(tmp_path, capsys):
    config = TrainConfig(
        dataset="digits", epochs=7, batch_size=64, dim=8, out=str(tmp_path / "run"), linear_probe="none"
    )
    trainer = Trainer(config)
    # digits: 1294 training images, 20 steps of 64; the bank is the training images, val the 144 held out.
    assert (len(trainer.data.train), len(trainer.data.bank), len(trainer.data.val)) == (1294, 1294, 144)
    assert trainer.validate_every == monitoring_cadence(1280, 1294, 144, batchnorm=True) == 5
    with trainer:
        trainer.fit()
    assert "held-out monitoring every 5 epochs and at the last" in capsys.readouterr().out
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert ["knn_acc" in record for record in records] == [False] * 4 + [True, False, True]
    assert all(math.isfinite(record["knn_acc"]) for record in records if "knn_acc" in record)


def test_a_set_cadence_is_used_as_given_and_not_announced(tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["--dataset", "digits", "--batch-size", "64", "--dim", "8", "--linear-probe", "none", "--epochs", "2"]
    assert main(["train", *flags, "--validate-every", "1", "--out", str(out)]) == 0
    assert "held-out monitoring every" not in capsys.readouterr().out
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert ["knn_acc" in record for record in records] == [True, True]
    saved = TrainConfig.from_yaml(out / "config.yaml")
    assert saved.validate_every == 1


def test_no_announcement_without_progress_output(tmp_path, capsys):
    config = TrainConfig(dataset="digits", epochs=1, batch_size=64, dim=8, out=str(tmp_path / "run"), progress=False)
    with Trainer(config.replace(linear_probe="none")) as trainer:
        trainer.fit()
    assert "held-out monitoring" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("n", "world_size", "batch_size"), [(1294, 1, 64), (1294, 2, 64), (3600, 3, 255), (1000, 4, 8)]
)
def test_the_steps_per_epoch_are_those_every_rank_runs(n, world_size, batch_size):
    local = batch_size // world_size
    for rank in range(world_size):
        trainer = SimpleNamespace(
            data=SimpleNamespace(train=range(n)),
            context=SimpleNamespace(world_size=world_size, rank=rank),
            local_batch_size=local,
        )
        runs = len(shard_indices(n, rank, world_size, seed=3, epoch=2)) // local  # as _train_epoch counts them
        assert Trainer._steps_per_epoch(trainer) == runs


def test_the_documented_mnist5k_sizes():
    data = load_training_data(TrainConfig(dataset="mnist5k"))
    assert (len(data.train), len(data.bank), len(data.val)) == (3600, 3600, 400)
    assert monitoring_cadence(len(data.train) // 256 * 256, len(data.bank), len(data.val), batchnorm=True) == 5


def test_a_resumed_run_keeps_the_cadence_its_config_gives(tmp_path):
    out = tmp_path / "run"
    flags = ["--dataset", "digits", "--batch-size", "64", "--dim", "8", "--linear-probe", "none", "--no-progress"]
    assert main(["train", *flags, "--epochs", "2", "--out", str(out)]) == 0  # unset: only the last epoch
    assert main(["train", *flags, "--epochs", "7", "--out", str(out), "--resume"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert ["knn_acc" in record for record in records] == [False, True, False, False, True, False, True]
    assert (out / "best.pt").is_file()
    stored = tmp_path / "stored"
    assert main(["train", *flags, "--epochs", "1", "--validate-every", "1", "--out", str(stored)]) == 0
    assert main(["train", *flags, "--epochs", "2", "--out", str(stored), "--resume"]) == 0
    assert TrainConfig.from_yaml(stored / "config.yaml").validate_every == 1
    records = [json.loads(line) for line in (stored / "metrics.jsonl").read_text().splitlines()]
    assert ["knn_acc" in record for record in records] == [True, True]
