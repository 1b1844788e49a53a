"""A learnable temperature in training: trained by the optimiser, logged, checkpointed and restored on resume."""

import json

import pytest
import torch

from aligniform.build import build_optimizer
from aligniform.config import TrainConfig
from aligniform.objective import Objective
from aligniform.train import load_checkpoint
from aligniform.train.checkpoint import save_atomic

from .folders import train

pytestmark = pytest.mark.usefixtures("single_thread")

LEARNT = ["--objective", "contrastive(tau=learn(0.2, min=0.01)) + uniform(t=2)"]


def _taus(out):
    return [json.loads(line)["contrastive_tau"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_optimizer_trains_the_objective_without_weight_decay():
    config = TrainConfig(weight_decay=1e-4)
    model = torch.nn.Linear(3, 2)
    objective = Objective.parse("contrastive(tau=learn(0.1))")
    optimizer = build_optimizer(config, model, objective)
    model_group, objective_group = optimizer.param_groups
    assert objective_group["params"] == list(objective.parameters()) and objective_group["weight_decay"] == 0
    assert model_group["weight_decay"] == 1e-4
    # Nothing to learn: one group, as before (older checkpoints' optimiser state still loads).
    assert len(build_optimizer(config, model, Objective.parse("contrastive(tau=0.1)")).param_groups) == 1


def test_learnt_temperature_is_logged_checkpointed_and_resumed_exactly(tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert train(whole, *LEARNT, epochs=2) == 0
    taus = _taus(whole)
    assert len(taus) == 2 and taus[0] != 0.2 and taus[1] != taus[0]  # it is trained
    state = load_checkpoint(whole / "checkpoint.pt")
    (parameter,) = state["objective"].values()
    assert float(torch.exp(-parameter)) == pytest.approx(taus[-1], rel=1e-5)

    assert train(resumed, *LEARNT, epochs=1) == 0
    assert train(resumed, *LEARNT, "--resume", epochs=2) == 0
    assert _taus(resumed) == taus
    final = load_checkpoint(resumed / "checkpoint.pt")
    assert torch.equal(final["objective"]["terms.0.loss.learned.tau.parameter"], parameter)
    assert all(torch.equal(final["model"][k], state["model"][k]) for k in state["model"])


def test_checkpoint_without_objective_state_still_resumes(tmp_path):
    out = tmp_path / "old"
    assert train(out, epochs=1) == 0
    state = load_checkpoint(out / "checkpoint.pt")
    del state["objective"]  # as written before objectives could learn
    save_atomic(state, out / "checkpoint.pt")
    assert train(out, "--resume", epochs=2) == 0
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2
