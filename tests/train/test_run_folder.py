"""Run folders users can trust: refused unless on purpose, locked, resumed faithfully, safe to load, one-line errors."""

import errno
import json
import math
import os
import pickle
import shutil
import signal
import stat

import numpy as np
import pytest
import torch
import yaml

from aligniform import _faults
from aligniform.cli import main
from aligniform.cli.errors import describe_os_error
from aligniform.config import TrainConfig
from aligniform.train import CheckpointError, ResultsNotSaved, RunFolderError, Trainer, load_checkpoint, run
from aligniform.train.checkpoint import FORMAT, save_atomic, set_rng_state
from aligniform.train.lifecycle import RunLock
from aligniform.train.run_folder import LOCK_FILE, RESUMABLE_OPTIONS, RunFolderWriteError, check_folder
from aligniform.train.run_log import recover_metrics
from tests.support.files import snapshot

from .folders import assert_consistent, train, train_args

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-epoch run (copied by each test that changes it)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert train(out) == 0
    return out


@pytest.fixture
def copy(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


@pytest.fixture(autouse=True)
def _no_faults(monkeypatch):
    monkeypatch.delenv(_faults.FAULT_ENV, raising=False)
    _faults.reset()


def one_line_error(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


# ---------------------------------------------------------------------------- created or replaced only on purpose


def test_a_folder_holding_a_run_is_refused_without_resume_or_overwrite(copy, capsys):
    before = snapshot(copy)
    assert train(copy) == 2
    err = one_line_error(capsys)
    assert str(copy) in err and "--resume" in err and "--overwrite" in err
    assert snapshot(copy) == before


@pytest.mark.parametrize(
    "args,message",
    [
        (["--overwrite", "--batch-size", "5000"], "--batch-size 5000 is larger than the training set"),
        (["--overwrite", "--eval-layer", "nosuch"], "eval_layer: layer 'nosuch' is not a layer"),
        (["--overwrite", "--objective", "align(alpha=2, beta=1)"], "objective"),
        (["--overwrite", "--dataset", "nosuch"], "nosuch"),
        (
            ["--resume", "--batch-size", "5000"],
            "cannot change batch_size: the run used 128, this command asks for 5000",
        ),
        (["--resume", "--lr", "5.0"], "cannot change lr: the run used 0.12, this command asks for 5.0"),
        (["--resume", "--objective", "contrastive(tau=0.5)"], "cannot change objective: the run used"),
        (["--resume", "--dim", "16"], "cannot change dim: the run used 8, this command asks for 16"),
        (["--resume", "--dataset", "mnist5k"], "cannot change dataset: the run used 'digits'"),
        (["--resume", "--epochs", "1"], "cannot set epochs to 1: the run has already trained 2 epochs"),
        (["--resume", "--overwrite"], "give only one"),
    ],
)
def test_a_refused_command_leaves_the_folder_byte_identical(copy, capsys, args, message):
    before = snapshot(copy)
    assert main([*train_args(copy), *args]) == 2  # the flag given last wins
    assert message in one_line_error(capsys)
    assert snapshot(copy) == before


def test_bad_out_paths_are_refused_before_anything_is_written(tmp_path, capsys):
    assert main(train_args("")) == 2
    assert "out is empty" in one_line_error(capsys)
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    assert main(train_args(afile)) == 2
    assert f"--out {afile} is a file" in one_line_error(capsys)
    assert main(train_args(afile / "sub" / "run")) == 2
    assert f"lies under the file {afile}" in one_line_error(capsys)
    assert afile.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_a_wrong_eval_layer_fails_before_training_and_creates_nothing(tmp_path, capsys):
    out = tmp_path / "new"
    assert train(out, "--eval-layer", "nosuch") == 2
    assert "valid layers" in one_line_error(capsys)
    assert not out.exists()
    with pytest.raises(ValueError, match="nosuch"):
        Trainer(TrainConfig(dataset="digits", dim=8, batch_size=128, eval_layer="nosuch", out=str(out)))


def test_overwrite_replaces_the_run_and_records_it(copy):
    (copy / "notes.txt").write_text("kept\n")
    assert train(copy, "--overwrite", epochs=1) == 0
    state = assert_consistent(copy, 1)
    assert [event["event"] for event in state["history"]] == ["start"]
    assert "checkpoint.pt" in state["history"][0]["replaced"]
    assert (copy / "notes.txt").read_text() == "kept\n"  # only the run's own files are replaced


# ---------------------------------------------------------------------------- lock


def test_a_locked_folder_is_refused_at_once_naming_the_holder(copy, capsys):
    before = snapshot(copy)
    with RunLock(copy):
        assert train(copy, "--resume", epochs=3) == 2
        err = one_line_error(capsys)
        assert f"pid {os.getpid()} on host" in err and "in use by another aligniform process" in err
        assert snapshot(copy) == {**before, LOCK_FILE: snapshot(copy)[LOCK_FILE]}
    assert (copy / LOCK_FILE).read_text() == ""  # released: the holder's note is cleared
    # A lock file left by a dead process (its note still there) is no lock: the OS released it.
    (copy / LOCK_FILE).write_text("pid 999999 on host gone, started long ago\n")
    assert train(copy, "--resume", epochs=3) == 0
    assert_consistent(copy, 3)


def test_the_trainer_holds_the_lock_until_closed(tmp_path):
    config = TrainConfig(dataset="digits", epochs=1, batch_size=128, dim=8, out=str(tmp_path / "r"), progress=False)
    with Trainer(config) as trainer:
        trainer.fit()
        with pytest.raises(RunFolderError, match=f"pid {os.getpid()}"):
            RunLock(tmp_path / "r").acquire()
        trainer.fit(resume=True)  # the same trainer continues under the lock it holds (nothing left to train)
        assert [event["event"] for event in trainer.history] == ["start", "resume"]
    RunLock(tmp_path / "r").acquire().release()


# ---------------------------------------------------------------------------- faithful resume


def test_resume_works_from_the_checkpoint_alone_and_records_each_change(finished, copy):
    (copy / "config.yaml").unlink()
    (copy / "history.yaml").unlink()
    assert main(["train", "--out", str(copy), "--resume", "--epochs", "3", "--device", "cpu"]) == 0
    state = assert_consistent(copy, 3)
    resumed = state["history"][-1]
    assert resumed["event"] == "resume" and (resumed["epochs_done"], resumed["from_epoch"]) == (2, 3)
    assert resumed["changes"] == {
        "epochs": {"old": 2, "new": 3},
        "device": {"old": "auto", "new": "cpu"},
        "out": {"old": str(finished), "new": str(copy)},  # the folder was moved (copied here)
    }
    assert yaml.safe_load((copy / "history.yaml").read_text())[-1]["changes"] == resumed["changes"]
    assert state["config"]["device"] == "cpu" and state["config"]["dim"] == 8


def test_the_resumable_options_are_the_documented_ones():
    assert set(RESUMABLE_OPTIONS) == {"epochs", "progress", "device", "data_dir", "download", "out", "validate_every"}


def test_a_resume_may_monitor_less_often(tmp_path):
    out = tmp_path / "run"
    assert train(out, epochs=1) == 0
    assert train(out, "--resume", "--validate-every", "2", epochs=4) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert ["knn_acc" in record for record in records] == [True, True, False, True]
    assert "validate_every" in (out / "history.yaml").read_text()


def test_extending_a_cosine_schedule_applies_the_new_schedule(tmp_path):
    out = tmp_path / "cos"
    assert train(out, "--schedule", "cosine", epochs=2) == 0
    assert train(out, "--resume", epochs=4) == 0
    lrs = [json.loads(line)["lr"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    base = 0.12 * 128 / 256
    assert lrs[1] == pytest.approx(base * 0.5)  # epoch 2 of 2 epochs: half way down the first schedule
    # epoch 3 follows the 4-epoch cosine from where the run is (epoch 2 of 4: base * 0.5), not the 2-epoch one (0)
    assert lrs[2] == pytest.approx(base * 0.5 * (1 + math.cos(math.pi * 2 / 4)))
    assert lrs[3] == pytest.approx(base * 0.5 * (1 + math.cos(math.pi * 3 / 4)))


def test_resume_with_only_a_config_yaml_starts_the_run_from_epoch_zero(tmp_path):
    out = tmp_path / "started"
    out.mkdir()
    TrainConfig(dataset="digits", epochs=1, batch_size=128, dim=8, seed=3, linear_probe="none", out=str(out)).to_yaml(
        out / "config.yaml"
    )
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert_consistent(out, 1)


def test_a_torn_metrics_line_and_a_lagging_best_pt_are_repaired_on_resume(copy):
    state = load_checkpoint(copy / "checkpoint.pt")
    lines = (copy / "metrics.jsonl").read_text().splitlines(keepends=True)
    (copy / "metrics.jsonl").write_text(lines[0] + lines[1][:17])  # epoch 2's line half written
    if state["best_epoch"] == 2:
        save_atomic({**state, "epoch": 1}, copy / "best.pt")  # as if killed before best.pt of epoch 2
    assert train(copy, "--resume") == 0  # nothing left to train: the folder is repaired and re-evaluated
    state = assert_consistent(copy, 2)
    assert "metrics.jsonl" in state["history"][-1]["repaired"]


def test_old_checkpoints_resume_and_recover_their_metrics(copy):
    state = load_checkpoint(copy / "checkpoint.pt")
    for key in ("metrics", "history", "best_epoch"):
        del state[key]
    kind, keys, *rest = state["rng"][0]["numpy"]
    state["rng"][0]["numpy"] = (kind, keys.numpy().astype(np.uint32), *rest)  # numpy keys as an array, as before
    save_atomic(state, copy / "checkpoint.pt")
    text = (copy / "metrics.jsonl").read_text()
    (copy / "metrics.jsonl").write_text(text + text.splitlines()[0] + "\n" + '{"epoch": 3, "lo')  # repeat + torn
    assert isinstance(load_checkpoint(copy / "checkpoint.pt")["rng"][0]["numpy"][1], np.ndarray)
    assert [r["epoch"] for r in recover_metrics(copy / "metrics.jsonl", 2)] == [1, 2]
    assert train(copy, "--resume", epochs=3) == 0
    assert [json.loads(line)["epoch"] for line in (copy / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_a_checkpoint_of_another_model_gives_a_one_line_error(copy, capsys):
    state = load_checkpoint(copy / "checkpoint.pt")
    state["model"] = {key: value[:1] if value.dim() else value for key, value in state["model"].items()}
    save_atomic(state, copy / "checkpoint.pt")
    assert train(copy, "--resume", epochs=3) == 2
    assert "do not fit" in one_line_error(capsys)


# ---------------------------------------------------------------------------- safe loading


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_whose_pickle_calls_os_system_is_refused_and_never_run(tmp_path, capsys):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "model": {}, "payload": _RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match=r"holds (posix|nt|os)\.system.*could run code"):
        load_checkpoint(path)
    assert main(["eval", str(path)]) == 2
    assert "could run code" in one_line_error(capsys)
    assert not marker.exists()


def test_checkpoint_types_aligniform_writes_are_allowed(tmp_path):
    scheduler = torch.optim.lr_scheduler.MultiStepLR(torch.optim.SGD([torch.zeros(1)], lr=1.0), [2, 3])
    rng = np.random.get_state()
    save_atomic({"scheduler": scheduler.state_dict(), "numpy": rng, "dtype": np.dtype("uint32")}, tmp_path / "a.pt")
    state = load_checkpoint(tmp_path / "a.pt")
    assert state["scheduler"]["milestones"] == {2: 1, 3: 1} and np.array_equal(state["numpy"][1], rng[1])
    set_rng_state({"torch": torch.get_rng_state(), "numpy": state["numpy"], "python": __import__("random").getstate()})


def test_no_unsafe_torch_load_in_the_package():
    import aligniform

    root = os.path.dirname(aligniform.__file__)
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".py"):
                text = open(os.path.join(folder, name)).read()
                assert "weights_only=False" not in text, name
                if "torch.load(" in text:
                    assert name == "checkpoint.py", f"{name} calls torch.load; use load_checkpoint"


# ---------------------------------------------------------------------------- OS errors and file modes


def test_write_errors_are_one_line_naming_the_file_and_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(_faults.FAULT_ENV, "checkpoint.write:eacces")
    assert train(tmp_path / "ro", epochs=1) == 2
    err = one_line_error(capsys)
    assert "checkpoint.pt: Permission denied; make the folder writable" in err
    monkeypatch.setenv(_faults.FAULT_ENV, "metrics.append:enospc")
    _faults.reset()
    assert train(tmp_path / "full", epochs=1) == 2
    err = one_line_error(capsys)
    assert "metrics.jsonl: No space left on device; free some space" in err and "--resume" in err
    assert (tmp_path / "full" / "metrics.jsonl").read_text() == ""  # the half line was cut back


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(copy, capsys):
    copy.chmod(0o555)
    try:
        assert train(copy, "--resume", epochs=3) == 2
        assert "permission denied" in one_line_error(capsys)
    finally:
        copy.chmod(0o755)


def test_os_error_messages():
    error = RunFolderWriteError(OSError(errno.ENOTDIR, "Not a directory"), "a/b")
    assert error.errno == errno.ENOTDIR and error.filename == "a/b" and "`resume`" in str(error)
    assert "choose a path whose parents are folders" in describe_os_error(error)
    with pytest.raises(RunFolderError, match="give only one"):
        check_folder("x", resume=True, overwrite=True)


def test_results_are_printed_before_a_failure_to_save_them(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(_faults.FAULT_ENV, "results:enospc")
    assert train(tmp_path / "r", epochs=1) == 2
    captured = capsys.readouterr()
    assert "5-NN %" in captured.out and "results.json: No space left on device" in captured.err
    with pytest.raises(ResultsNotSaved) as caught:
        _faults.reset()
        run(
            TrainConfig(dataset="digits", epochs=1, batch_size=128, dim=8, linear_probe="none", out=str(tmp_path / "s"))
        )
    assert 0 < caught.value.results["knn_acc"] <= 1


def test_every_file_of_a_run_has_the_same_mode(finished):
    umask = os.umask(0)
    os.umask(umask)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in finished.rglob("*") if path.is_file()}
    assert {"checkpoint.pt", "best.pt", "metrics.jsonl", "config.yaml", LOCK_FILE} <= set(modes)
    assert set(modes.values()) == {0o666 & ~umask}, modes


def test_history_and_checkpoint_pickle_only_plain_values(finished):
    state = torch.load(finished / "checkpoint.pt", weights_only=True)  # no allow-list needed for new checkpoints
    assert [r["epoch"] for r in state["metrics"]] == [1, 2] and state["history"][0]["event"] == "start"
    assert pickle.loads(pickle.dumps(state["history"])) == state["history"]


def test_a_write_the_os_refuses_inside_torch_save_is_an_os_error_not_a_torch_one(tmp_path):
    resource = pytest.importorskip("resource")
    path = tmp_path / "checkpoint.pt"
    save_atomic({"epoch": 1}, path)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
    try:
        with pytest.raises(OSError) as caught:  # torch itself says "inline_container.cc: unexpected pos"
            save_atomic({"epoch": 2, "weights": torch.zeros(100_000)}, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert caught.value.errno == errno.EFBIG
    assert load_checkpoint(path)["epoch"] == 1 and [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
