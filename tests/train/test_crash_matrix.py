"""The record survives any crash: a SIGKILL or a full disk at each write point, then --resume, leaves a consistent run.

Each case trains a tiny 2-epoch run with ``ALIGNIFORM_FAULT=POINT:KIND:N`` (see
``aligniform._faults``): ``kill`` in a separate process (SIGKILL, no clean-up;
forked from a multiprocessing fork server that has imported aligniform once, so
a case costs its training, not torch's import), ``enospc`` in this process (exit
code 2, one line naming the file). The folder is
then recovered the way a user would (``--resume``, or the same command when no
run was started; an overwrite killed before its swap was decided must have left
the old run byte for byte, and resuming it then gives the same run) and must
be consistent (``assert_consistent``: checkpoint, metrics.jsonl, best.pt,
config.yaml, history.yaml and results.json agree, no temporary file, no lock
held), with the very weights of an uninterrupted run.
"""

import multiprocessing
import os
import shutil
import signal
import sys

import pytest
import torch

from aligniform import _faults
from aligniform.train import load_checkpoint
from aligniform.train.overwrite import STAGING

from .folders import assert_consistent, run_files, train, train_args

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread")]

#: (point, which occurrence) in a fresh 2-epoch run: checkpoint and metrics at epoch 2, best.pt at epoch 1
#: (always an improvement), the rest once.
FRESH = [
    ("lock", 1),
    ("config.write", 1),
    ("config.rename", 1),
    ("history.write", 1),
    ("checkpoint.write", 2),
    ("checkpoint.rename", 2),
    ("best.write", 1),
    ("best.rename", 1),
    ("metrics.append", 2),
    ("results", 1),
]
#: Points of a resume (a 1-epoch run whose metrics.jsonl lost its line, resumed to 2 epochs): the checkpoint that
#: records the resume, the config and history, and the repair of metrics.jsonl.
RESUMED = [("checkpoint.write", 1), ("config.write", 1), ("history.write", 1), ("metrics.write", 1)]

#: Points of an overwrite (the finished 1-epoch run replaced by a 2-epoch one): the new run is built aside until
#: its first epoch is saved, then swapped in. Before the swap is decided (swap.rename) the old run must be left
#: byte for byte; after it, the new one is completed by the next process that locks the folder.
OVERWRITE_BEFORE = [
    ("config.write", 1),
    ("checkpoint.write", 1),
    ("best.rename", 1),
    ("metrics.append", 1),
    ("swap.write", 1),
    ("swap.rename", 1),
]
OVERWRITE_AFTER = [("swap.move", 1), ("swap.move", 4), ("checkpoint.write", 2)]

CASES = (
    [("fresh", point, n) for point, n in FRESH]
    + [("resume", point, n) for point, n in RESUMED]
    + [("overwrite", point, n) for point, n in OVERWRITE_BEFORE + OVERWRITE_AFTER]
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The weights of an uninterrupted 2-epoch run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert train(out) == 0
    return load_checkpoint(out / "checkpoint.pt")["model"]


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    """A finished 1-epoch run (resumed to 2 epochs by the resume cases)."""
    out = tmp_path_factory.mktemp("one_epoch") / "run"
    assert train(out, epochs=1) == 0
    return out


def _prepare(phase, folder, one_epoch):
    """The folder and the command of a case."""
    if phase == "fresh":
        return train_args(folder)
    shutil.copytree(one_epoch, folder)
    if phase == "overwrite":
        return train_args(folder, "--overwrite")
    (folder / "metrics.jsonl").write_text("")  # the epoch's line was lost: the resume must restore it
    return train_args(folder, "--resume")


def _recover(folder):
    resumable = (folder / "checkpoint.pt").exists() or (folder / "config.yaml").exists()
    return train(folder, *(["--resume"] if resumable else []))


def _old_run_kept(case, folder, one_epoch):
    """An overwrite that failed before its swap was decided left the old run's files byte for byte."""
    if case[0] == "overwrite" and case[1:] in OVERWRITE_BEFORE:
        assert run_files(folder) == run_files(one_epoch), "the old run was changed"


def _check(folder, reference):
    state = assert_consistent(folder, 2)
    assert all(torch.equal(reference[key], state["model"][key]) for key in reference), "weights differ"


def _name(case):
    return f"{case[0]}:{case[1]}:{case[2]}"


def _train_with_fault(command, fault):
    """The child process of a kill case: ``aligniform train`` with the fault armed."""
    import torch

    from aligniform.cli import main

    os.environ[_faults.FAULT_ENV] = fault
    torch.set_num_threads(1)
    sys.stdout = sys.stderr = open(os.devnull, "w")
    sys.exit(main(command))


def test_sigkill_at_every_write_point_then_resume(tmp_path, reference, one_epoch, capsys):
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["aligniform.cli", "aligniform.train", "sklearn.datasets", "tensorboard"])
    rows, failures = [], []
    for case in CASES:
        phase, point, n = case
        folder = tmp_path / _name(case).replace(":", "-")
        process = context.Process(
            target=_train_with_fault, args=(_prepare(phase, folder, one_epoch), f"{point}:kill:{n}")
        )
        process.start()
        process.join(400)
        left = sorted(path.name for path in folder.iterdir()) if folder.exists() else []
        try:
            assert process.exitcode == -signal.SIGKILL, f"exit {process.exitcode}"
            _old_run_kept(case, folder, one_epoch)
            assert _recover(folder) == 0
            _check(folder, reference)
            rows.append(f"{_name(case):26} kill -> killed; left {', '.join(left)}; resumed: consistent, same weights")
        except AssertionError as error:
            failures.append(f"{_name(case)}: {error}")
    with capsys.disabled():
        print("\n" + "\n".join(rows))
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("case", CASES, ids=_name)
def test_full_disk_at_every_write_point_then_resume(tmp_path, reference, one_epoch, capsys, monkeypatch, case):
    phase, point, n = case
    folder = tmp_path / "run"
    command = _prepare(phase, folder, one_epoch)
    monkeypatch.setenv(_faults.FAULT_ENV, f"{point}:enospc:{n}")
    _faults.reset()
    from aligniform.cli import main

    assert main(command) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "No space left on device; free some space" in err and str(folder) in err
    assert not [path.name for path in folder.iterdir() if path.name.endswith(".tmp")]  # cleaned up at once
    _old_run_kept(case, folder, one_epoch)
    if case[0] == "overwrite" and case[1:] in OVERWRITE_BEFORE:
        assert not (folder / STAGING).exists()  # the failed new run was dropped at once
    monkeypatch.delenv(_faults.FAULT_ENV)
    assert _recover(folder) == 0
    _check(folder, reference)
