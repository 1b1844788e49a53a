"""Throw-away folders the command-line tests refuse commands in."""

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run folder as training leaves it (the checkpoint's bytes do not matter: nothing reads them)."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_text("dataset: digits\n")
    (folder / "checkpoint.pt").write_bytes(b"not really a checkpoint")
    (folder / "best.pt").write_bytes(b"best")
    (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "loss": 0.5}) + "\n")
    (folder / "results.json").write_text(json.dumps({"knn_acc": 0.5}))
    return folder


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    """``pairs.npz``: 40 points on the unit circle, each paired with its neighbour."""
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    path = tmp_path / "pairs.npz"
    np.savez(path, x=x, y=np.roll(x, 1, axis=0))
    return path
