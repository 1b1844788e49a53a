"""Issue 19 on the command line: every mistake is exit 2 and one line, and the run folder is left byte for byte."""

import shutil

import pytest
import torch

from aligniform.cli import main
from aligniform.train import load_checkpoint
from tests.support.files import snapshot

from ..train.folders import train, train_args

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 1-epoch tiny run (copied by each test)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert train(out, epochs=1) == 0
    return out


@pytest.fixture
def copy(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


def refused(capsys, args):
    """Run the command: exit 2 and one line on stderr (returned)."""
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_a_failed_overwrite_leaves_the_old_run(copy, capsys):
    before = snapshot(copy)
    err = refused(capsys, train_args(copy, "--overwrite", "--knn-k", "5000", epochs=1))
    assert "--knn-k (5000) must not exceed" in err
    assert snapshot(copy) == before


def test_a_failed_start_writes_nothing(tmp_path, capsys):
    out = tmp_path / "new"
    assert "--knn-k (5000)" in refused(capsys, train_args(out, "--knn-k", "5000", epochs=1))
    assert not out.exists()
    assert train(out, epochs=1) == 0  # nothing left that blocks the corrected command


@pytest.mark.parametrize(
    "flag,value",
    [("--dim", "99999999999"), ("--image-size", "100000"), ("--seed", str(2**70))],
)
def test_sizes_that_would_exhaust_memory_and_huge_seeds_are_refused(tmp_path, capsys, flag, value):
    out = tmp_path / "new"
    assert flag in refused(capsys, train_args(out, flag, value, epochs=1))
    assert not out.exists()


def test_resume_without_checkpoint_refuses_to_start_over(copy, capsys):
    (copy / "checkpoint.pt").unlink()
    before = snapshot(copy)
    err = refused(capsys, train_args(copy, "--resume", epochs=2))
    assert "checkpoint.pt is missing" in err and "best.pt" in err and "--overwrite" in err
    assert snapshot(copy) == before


@pytest.mark.parametrize("name", [".aligniform.lock", "metrics.jsonl"])
def test_a_symlinked_run_file_is_refused_and_its_target_kept(copy, tmp_path, capsys, name):
    target = tmp_path / "precious.txt"
    target.write_text("mine\n")
    (copy / name).unlink(missing_ok=True)
    (copy / name).symlink_to(target)
    before = snapshot(copy)
    assert "symbolic link" in refused(capsys, train_args(copy, "--resume", epochs=2))
    assert target.read_text() == "mine\n" and snapshot(copy) == before


def test_eval_of_a_checkpoint_without_config_is_one_line(copy, capsys):
    state = load_checkpoint(copy / "checkpoint.pt")
    del state["config"]
    torch.save(state, copy / "checkpoint.pt")
    before = snapshot(copy)
    assert "has no config" in refused(capsys, ["eval", str(copy / "checkpoint.pt")])
    assert "has no config" in refused(capsys, train_args(copy, "--resume", epochs=2))
    assert snapshot(copy) == before


def test_eval_of_weights_of_another_model_is_one_line(copy, capsys):
    state = load_checkpoint(copy / "checkpoint.pt")
    state["model_info"]["dim"] = 16
    torch.save(state, copy / "checkpoint.pt")
    assert "does not match its model" in refused(capsys, ["eval", str(copy / "checkpoint.pt")])


def test_a_config_file_on_resume_sets_only_its_options(copy, tmp_path, capsys):
    only_epochs = tmp_path / "only_epochs.yaml"
    only_epochs.write_text("epochs: 2\n")
    assert main(["train", "--config", str(only_epochs), "--out", str(copy), "--resume", "--no-progress"]) == 0
    assert load_checkpoint(copy / "checkpoint.pt")["epoch"] == 2
