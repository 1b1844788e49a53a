"""Issue 19: damaged checkpoints, links in run folders, sizes that would exhaust memory, a config file on resume.

Every case is a one-line error naming the file or option (a CheckpointError, RunFolderError or ConfigError),
never a KeyError/IndexError/struct.error traceback, and nothing outside the run folder is written.
"""

import random

import pytest
import torch

from aligniform.config import ConfigError, TrainConfig
from aligniform.train import CheckpointError, RunFolderError, Trainer, load_checkpoint
from aligniform.train.checkpoint import save_atomic
from aligniform.train.lifecycle import RunLock
from aligniform.train.resolve import resolve_config
from aligniform.train.restore import restore_encoder
from aligniform.train.run_folder import LOCK_FILE, check_folder, resume_changes, stored_config
from aligniform.train.run_log import RunLog

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    """A tiny digits trainer (nothing trained, nothing written)."""
    out = tmp_path_factory.mktemp("trainer") / "run"
    config = TrainConfig(dataset="digits", dim=8, batch_size=64, linear_probe="none", progress=False, out=str(out))
    return Trainer(config)


@pytest.fixture(scope="module")
def checkpoint(trainer, tmp_path_factory):
    """The bytes and state of a real checkpoint."""
    path = tmp_path_factory.mktemp("checkpoint") / "checkpoint.pt"
    save_atomic(trainer.state_dict(), path)
    return path.read_bytes(), load_checkpoint(path)


def _fuzzed(data, state):
    """(name, bytes or state) of damaged checkpoints: truncated, bytes flipped, keys dropped, values of wrong types."""
    rng = random.Random(19)
    for length in (0, 1, 64, len(data) // 3, len(data) // 2, len(data) - 100, len(data) - 1):
        yield f"truncated to {length}", data[:length]
    for _ in range(40):
        flipped = bytearray(data)
        for position in rng.sample(range(len(data)), 3):
            flipped[position] ^= 0xFF
        yield "bytes flipped", bytes(flipped)
    for key in state:
        if key != "format":
            yield f"without {key}", {k: v for k, v in state.items() if k != key}
    for key in state:
        for wrong in (None, "text", 7, [], {}):
            yield f"{key} = {wrong!r}", {**state, key: wrong}
    yield "rng of another shape", {**state, "rng": [{}]}
    yield "model_info without fields", {**state, "model_info": {"name": "convnet"}}
    yield "config with a bad value", {**state, "config": {**state["config"], "dim": "many"}}
    yield "weights of another shape", {**state, "model": {k: v.flatten()[:1] for k, v in state["model"].items()}}


def test_every_damaged_checkpoint_is_a_one_line_checkpoint_error(checkpoint, trainer, tmp_path):
    data, state = checkpoint
    path = tmp_path / "checkpoint.pt"
    refused = 0
    for name, damage in _fuzzed(data, state):
        if isinstance(damage, bytes):
            path.write_bytes(damage)
        else:
            torch.save(damage, path)
        try:
            loaded = load_checkpoint(path)
            restore_encoder(path)
            trainer.load_state_dict(loaded)
        except CheckpointError as error:
            assert "\n" not in str(error), name
            refused += 1
        except Exception as error:  # noqa: BLE001 - the point: nothing but a CheckpointError
            pytest.fail(f"{name}: {type(error).__name__}: {error}")
    assert refused >= 60


def test_a_checkpoint_without_config_is_refused_at_restore(checkpoint, tmp_path):
    _, state = checkpoint
    path = tmp_path / "c.pt"
    torch.save({k: v for k, v in state.items() if k != "config"}, path)
    with pytest.raises(CheckpointError, match="has no config"):
        restore_encoder(path)


def test_weights_of_another_model_are_refused_in_one_line(checkpoint, tmp_path):
    _, state = checkpoint
    path = tmp_path / "c.pt"
    info = {**state["model_info"], "dim": 16}
    torch.save({**state, "model_info": info}, path)
    with pytest.raises(CheckpointError, match="does not match its model") as caught:
        restore_encoder(path)
    assert "\n" not in str(caught.value)


def test_a_pickle_refusal_comes_without_a_warning(tmp_path, recwarn):
    path = tmp_path / "evil.pt"
    torch.save({"format": "aligniform-checkpoint-v1", "x": random.Random()}, path)
    with pytest.raises(CheckpointError, match="never writes"):
        load_checkpoint(path)
    assert not [warning for warning in recwarn if "torch" in str(warning.filename)]


# ---------------------------------------------------------------------------------------------- links


def test_a_symlinked_lock_is_refused_and_its_target_kept(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("mine\n")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_FILE).symlink_to(target)
    with pytest.raises(RunFolderError, match="symbolic link"):
        RunLock(folder).acquire()
    with pytest.raises(RunFolderError, match="symbolic link"):
        check_folder(folder)
    assert target.read_text() == "mine\n"


def test_metrics_are_never_appended_through_a_link(tmp_path):
    target = tmp_path / "precious.jsonl"
    target.write_text("mine\n")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metrics.jsonl").symlink_to(target)
    with pytest.raises(RunFolderError, match="symbolic link"):
        RunLog(folder, tensorboard=False).write({"epoch": 1, "loss": 0.5})
    with pytest.raises(RunFolderError, match="metrics.jsonl is a symbolic link"):
        check_folder(folder, resume=True)
    assert target.read_text() == "mine\n"


# ---------------------------------------------------------------------------------------------- sizes, seeds


@pytest.mark.parametrize(
    "option,value,message",
    [
        ("dim", 99999999999, "`dim` (99999999999) must be at most 65536"),
        ("image_size", 100000, "`image_size` (100000) must be at most 4096"),
        ("input_size", 100000, "`input_size` (100000) must be at most 4096"),
        ("seed", 2**70, "`seed` must lie between"),
        ("seed", -(2**70), "`seed` must lie between"),
    ],
)
def test_sizes_and_seeds_that_cannot_work_are_refused_by_the_config(option, value, message):
    with pytest.raises(ConfigError) as caught:
        TrainConfig(**{option: value})
    assert message in str(caught.value) and caught.value.options == (option,)


def test_the_largest_allowed_seed_seeds_every_generator(trainer):
    TrainConfig(seed=2**62)
    torch.Generator().manual_seed(2**62 + 1000)  # shard_indices adds the epoch to the seed


# ---------------------------------------------------------------------------------------------- config file on resume


def test_a_config_file_on_resume_changes_only_the_options_it_sets(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    stored = TrainConfig(dataset="digits", dim=8, batch_size=64, epochs=1, out=str(folder))
    stored.to_yaml(folder / "config.yaml")
    only_epochs = tmp_path / "only_epochs.yaml"
    only_epochs.write_text("epochs: 3\n")
    config = resolve_config(only_epochs, {"out": str(folder)}, resume=True)
    assert config == stored.replace(epochs=3)
    assert resume_changes(stored_config(folder), config, 0) == {"epochs": {"old": 1, "new": 3}}
    # Without resume the file is the base, as before.
    assert resolve_config(only_epochs, {"out": str(folder)}) == TrainConfig(epochs=3, out=str(folder))


def test_metrics_are_fsynced_only_with_the_runs_last_epoch(tmp_path, monkeypatch):
    # The checkpoint holds every record and a resume rewrites metrics.jsonl from it: one fsync of the file, with
    # the last line, makes the finished run durable without an fsync per epoch (issue 21).
    synced = []
    monkeypatch.setattr("aligniform.train.run_log.os.fsync", lambda descriptor: synced.append(descriptor))
    log = RunLog(tmp_path, tensorboard=False)
    log.write({"epoch": 1, "loss": 0.5}, sync=False)
    assert not synced
    log.write({"epoch": 2, "loss": 0.4})
    assert len(synced) == 1
    assert (tmp_path / "metrics.jsonl").read_text() == '{"epoch": 1, "loss": 0.5}\n{"epoch": 2, "loss": 0.4}\n'
    written = []
    monkeypatch.setattr(RunLog, "write", lambda self, record, sync=True: written.append((record["epoch"], sync)))
    config = TrainConfig(dataset="digits", epochs=2, batch_size=256, dim=8, out=str(tmp_path / "run"), progress=False)
    with Trainer(config) as trainer:
        trainer.fit()
    assert written == [(1, False), (2, True)]
