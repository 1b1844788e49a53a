"""The training pipeline: end-to-end runs, exact resume after a real kill, NaN stop, configs and CLI errors."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from aligniform.cli import main
from aligniform.config import ConfigError, TrainConfig
from aligniform.train import Trainer, TrainingDiverged, load_checkpoint, run, save_atomic
from aligniform.train.checkpoint import CheckpointError, ModelInfo, read_model_info
from aligniform.train.moco import FeatureQueue
from aligniform.train.restore import restore_encoder

FAST = ["--dataset", "digits", "--batch-size", "64", "--dim", "16", "--no-progress", "--linear-probe", "short"]


def tiny_config(out, **overrides) -> TrainConfig:
    values = dict(dataset="digits", epochs=1, batch_size=64, dim=16, out=str(out), progress=False)
    values.update(overrides)
    return TrainConfig(**values)


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed (optional)")
def test_end_to_end_one_epoch_cli(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *FAST, "--epochs", "1", "--out", str(out)]) == 0
    for name in ("config.yaml", "metrics.jsonl", "checkpoint.pt", "best.pt", "results.json"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    for key in ("linear_acc", "knn_acc", "mean_classifier_acc", "alignment", "uniformity", "tolerance"):
        assert key in results
    for key in ("linear_acc", "knn_acc", "mean_classifier_acc"):
        assert 0.3 < results[key] <= 1.0  # one epoch on digits is already far above chance (0.1)
    assert 0 <= results["alignment"] <= 4 and -4 <= results["uniformity"] <= 0
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert {"epoch", "loss", "align", "uniform", "val_alignment", "val_uniformity", "knn_acc", "lr", "seconds"} <= set(
        record
    )
    saved = TrainConfig.from_yaml(out / "config.yaml")
    assert saved.dataset == "digits" and saved.epochs == 1 and saved.dim == 16
    assert "linear %" in capsys.readouterr().out
    assert any((out / "tensorboard").iterdir())


def test_eval_command_on_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    run(tiny_config(out))
    assert main(["eval", str(out / "checkpoint.pt"), "--protocol", "knn", "--layer", "output"]) == 0
    written = json.loads((out / "eval_output.json").read_text())
    assert 0.3 < written["knn_acc"] <= 1 and written["eval_layer"] == "output"
    assert "5-NN %" in capsys.readouterr().out


def _train_command(out, epochs):
    return [
        sys.executable,
        "-m",
        "aligniform",
        "train",
        *FAST,
        "--epochs",
        str(epochs),
        "--out",
        str(out),
        "--linear-probe",
        "none",
        "--seed",
        "3",
    ]


def _final_weights(out):
    return load_checkpoint(out / "checkpoint.pt")["model"]


@pytest.mark.slow
def test_killed_run_resumes_bit_for_bit(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(_train_command(whole, 4), check=True, env=env, capture_output=True, timeout=300)

    process = subprocess.Popen(_train_command(killed, 4), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    metrics = killed / "metrics.jsonl"
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # mid-epoch 3 (or later): no chance to clean up
    process.wait()
    assert load_checkpoint(killed / "checkpoint.pt")["epoch"] < 4, "the run finished before it could be killed"

    subprocess.run(_train_command(killed, 4) + ["--resume"], check=True, env=env, capture_output=True, timeout=300)
    expected, resumed = _final_weights(whole), _final_weights(killed)
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)
    epochs = [json.loads(line)["epoch"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]


def test_nan_loss_stops_with_epoch_and_step_and_keeps_checkpoint(tmp_path, monkeypatch):
    trainer = Trainer(tiny_config(tmp_path / "nan", epochs=3))
    calls = {"n": 0}
    original = trainer.objective.forward

    def poisoned(x, y, queue=None, moco=False):
        calls["n"] += 1
        loss = original(x, y, queue, moco)
        return loss * float("nan") if calls["n"] == steps_per_epoch + 2 else loss

    steps_per_epoch = len(trainer.data.train) // 64
    monkeypatch.setattr(trainer.objective, "forward", poisoned)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 2 .*end of epoch 1.*checkpoint.pt"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "nan" / "checkpoint.pt")["epoch"] == 1


def test_nan_stop_from_cli_is_one_line(tmp_path, capsys):
    code = main(
        [
            "train",
            *FAST,
            "--epochs",
            "1",
            "--lr",
            "1e30",
            "--momentum",
            "0",
            "--out",
            str(tmp_path / "x"),
            "--objective",
            "simple(lam=1)",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "NaN/inf at epoch 1, step" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--dataset", "nosuch"], "nosuch"),
        (["--objective", "align(beta=1)"], "unknown argument"),
        (["--epochs", "0"], "--epochs must be a positive integer"),
        (["--batch-size", "1"], "--batch-size must be at least 2"),
        (["--schedule", "linear"], "schedule must be one of"),
        (["--model", "vgg"], "vgg"),
        (["--dataset", "cifar10", "--data-dir", "/nonexistent/cifar"], "/nonexistent/cifar"),
        (["--device", "cuda"], "CUDA is not available"),
        (["--milestones", "3,x"], "milestones"),
    ],
)
def test_bad_cli_arguments_exit_nonzero_without_traceback(tmp_path, capsys, args, message):
    if "--device" in args and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code = main(["train", "--no-progress", "--epochs", "1", "--out", str(tmp_path / "bad"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err


@pytest.mark.slow
def test_cli_subprocess_error_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "aligniform", "train", "--objective", "bogus(1)", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "bogus" in result.stderr


def test_help_on_every_command():
    for command in (["--help"], ["train", "--help"], ["eval", "--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(command)
        assert exit_info.value.code == 0


def test_config_yaml_round_trip_and_errors(tmp_path):
    config = TrainConfig(dataset="digits", milestones=[3, 5], objective="contrastive(tau=0.5) + uniform(t=2)")
    path = tmp_path / "c.yaml"
    config.to_yaml(path)
    assert TrainConfig.from_yaml(path) == config
    path.write_text(yaml.safe_dump({"dataset": "digits", "epoch": 3}))
    with pytest.raises(ConfigError, match="unknown config option.*epoch.*valid options"):
        TrainConfig.from_yaml(path)
    path.write_text("dataset: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TrainConfig.from_yaml(path)
    with pytest.raises(ConfigError, match="`lr` must be a positive"):
        TrainConfig(lr=-1)


def test_config_file_with_cli_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    TrainConfig(dataset="digits", epochs=7, dim=16, batch_size=64).to_yaml(path)
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                str(path),
                "--epochs",
                "1",
                "--out",
                str(out),
                "--no-progress",
                "--linear-probe",
                "none",
            ]
        )
        == 0
    )
    saved = TrainConfig.from_yaml(out / "config.yaml")
    assert (saved.epochs, saved.dim, saved.batch_size) == (1, 16, 64)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    code = main(["train", *FAST, "--out", str(tmp_path / "empty"), "--resume"])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"PK\x03\x04 definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(bad)
    assert main(["eval", str(bad)]) == 2
    assert "corrupt" in capsys.readouterr().err


def test_checkpoint_describes_its_model_with_plain_values(tmp_path):
    out = tmp_path / "info"
    Trainer(tiny_config(out, linear_probe="none")).fit()
    # Plain types only: the checkpoint loads without unpickling arbitrary objects.
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    expected = ModelInfo(name="convnet", dim=16, in_channels=1, image_size=8, dataset="digits")
    assert read_model_info(state) == expected and state["model_info"] == expected.to_dict()
    restored = restore_encoder(out / "checkpoint.pt")
    assert restored.info == expected and not restored.encoder.training and restored.config.dataset == "digits"
    with pytest.raises(CheckpointError, match="no model_info"):
        read_model_info({"format": state["format"]})
    with pytest.raises(CheckpointError, match="lacks image_size"):
        read_model_info({"model_info": {k: v for k, v in expected.to_dict().items() if k != "image_size"}})


def test_atomic_save_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_atomic({"epoch": 1}, path)

    def failing_save(obj, stream):
        stream.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError):
        save_atomic({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left behind


def test_moco_mode_trains_and_fills_queue(tmp_path):
    config = tiny_config(
        tmp_path / "moco",
        moco=True,
        queue_size=256,
        objective="contrastive(tau=0.2) + uniform(t=2)",
        linear_probe="none",
    )
    trainer = Trainer(config)
    before = trainer.queue.features.clone()
    trainer.fit()
    steps = len(trainer.data.train) // 64
    assert int(trainer.queue.pointer) == (steps * 64) % 256
    assert not torch.equal(before, trainer.queue.features)
    assert torch.allclose(trainer.queue.features.norm(dim=1), torch.ones(256), atol=1e-5)


def test_feature_queue_wraps_around():
    queue = FeatureQueue(5, 2, torch.Generator().manual_seed(0))
    keys = torch.nn.functional.normalize(torch.arange(1, 15, dtype=torch.float32).view(7, 2), dim=1)
    queue.push(keys[:3])
    queue.push(keys[3:7])
    assert int(queue.pointer) == 2
    assert torch.equal(queue.features[[3, 4, 0, 1]], keys[3:7])
    assert torch.equal(queue.features[2], keys[2])


def test_bf16_precision_runs(tmp_path):
    trainer = Trainer(tiny_config(tmp_path / "bf16", precision="bf16", linear_probe="none"))
    trainer.fit()
    record = json.loads((tmp_path / "bf16" / "metrics.jsonl").read_text())
    assert all(map(lambda v: v == v, [record["loss"], record["knn_acc"]]))


def test_validate_every_monitors_only_those_epochs_and_the_last_and_trains_the_same(tmp_path):
    every = run(tiny_config(tmp_path / "every", epochs=3, validate_every=1, linear_probe="none"), overwrite=True)
    sparse = run(tiny_config(tmp_path / "sparse", epochs=3, validate_every=2, linear_probe="none"), overwrite=True)
    timeless = [{key: value for key, value in results.items() if "seconds" not in key} for results in (every, sparse)]
    assert timeless[0] == timeless[1]  # the final evaluation
    weights = [load_checkpoint(tmp_path / name / "checkpoint.pt")["model"] for name in ("every", "sparse")]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    records = [json.loads(line) for line in (tmp_path / "sparse" / "metrics.jsonl").read_text().splitlines()]
    assert ["knn_acc" in record for record in records] == [False, True, True]
    full = [json.loads(line) for line in (tmp_path / "every" / "metrics.jsonl").read_text().splitlines()]
    for mine, theirs in zip(records, full):
        assert {key: value for key, value in theirs.items() if key in mine and key != "seconds"} == {
            key: value for key, value in mine.items() if key != "seconds"
        }


def test_validate_every_must_be_a_positive_integer():
    with pytest.raises(ConfigError, match="`validate_every`"):
        TrainConfig(validate_every=0)
