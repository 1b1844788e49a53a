"""Helpers of the run-folder tests: tiny training commands, the run's own files, the consistency invariants."""

import json

import yaml

from aligniform.cli import main
from aligniform.config import TrainConfig
from aligniform.train import load_checkpoint
from aligniform.train.lifecycle import RunLock
from aligniform.train.run_folder import RUN_FILES
from aligniform.train.run_log import metrics_line
from tests.support.files import snapshot

# Tiny digits runs: 1,294 training images in batches of 128 -> 10 steps an epoch. Monitored every epoch, so that
# each epoch whose k-NN accuracy improves writes best.pt (the crash matrix's write points count on epoch 1's).
TINY = ["--dataset", "digits", "--batch-size", "128", "--dim", "8", "--no-progress", "--linear-probe", "none"]
TINY += ["--seed", "3", "--validate-every", "1"]


def train_args(out, *extra, epochs=2):
    return ["train", *TINY, "--epochs", str(epochs), "--out", str(out), *extra]


def train(out, *extra, epochs=2):
    """``aligniform train`` in this process; its exit code."""
    return main(train_args(out, *extra, epochs=epochs))


def run_files(folder):
    """The :func:`~tests.support.files.snapshot` of the run's own files (no lock, no temporary or staging folder)."""
    return {
        name: value
        for name, value in (snapshot(folder) or {}).items()
        if name.split("/")[0] in RUN_FILES and not name.split("/")[-1].endswith(".tmp")
    }


def assert_consistent(out, epochs):
    """The run folder's record agrees with itself: every file says the same ``epochs`` epochs."""
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["epoch"] == epochs
    text = (out / "metrics.jsonl").read_text()
    assert [json.loads(line)["epoch"] for line in text.splitlines()] == list(range(1, epochs + 1))
    assert text == "".join(metrics_line(record) for record in state["metrics"])
    assert state["best_epoch"] >= 1 and load_checkpoint(out / "best.pt")["epoch"] == state["best_epoch"]
    assert TrainConfig.from_yaml(out / "config.yaml") == TrainConfig.from_dict(state["config"])
    assert yaml.safe_load((out / "history.yaml").read_text()) == state["history"]
    assert json.loads((out / "results.json").read_text())["epochs"] == epochs
    assert not [path.name for path in out.iterdir() if path.name.endswith(".tmp")]
    RunLock(out).acquire().release()  # nobody holds the folder
    return state
