"""HypersphereCallback in a real transformers.Trainer run on the CPU (a small torch model, no downloads)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

transformers = pytest.importorskip("transformers", reason="transformers is not installed (extra: integrations)")
pytest.importorskip("accelerate", reason="accelerate (needed by transformers.Trainer) is not installed")

from aligniform import Objective  # noqa: E402
from aligniform.integrations import measure_pairs  # noqa: E402
from aligniform.integrations.transformers import HypersphereCallback  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")


class TinyEncoder(nn.Module):
    """Called with one view it returns its embeddings; with two, the align + uniform loss the Trainer minimises."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4))
        self.objective = Objective.parse("align(alpha=2) + uniform(t=2)")

    def forward(self, x_view, y_view=None):
        x = F.normalize(self.net(x_view), dim=1)
        if y_view is None:
            return {"embeddings": x}
        return {"loss": self.objective(x, F.normalize(self.net(y_view), dim=1))}


class PairDataset(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        inputs = torch.randn(n, 8, generator=torch.Generator().manual_seed(seed))
        noise = torch.randn(2, n, 8, generator=torch.Generator().manual_seed(seed + 1))
        self.first, self.second = inputs + 0.3 * noise[0], inputs + 0.3 * noise[1]

    def __len__(self):
        return len(self.first)

    def __getitem__(self, index):
        return {"x_view": self.first[index], "y_view": self.second[index]}


def noisy_views(x):
    return x + 0.3 * torch.randn_like(x), x + 0.3 * torch.randn_like(x)


def held_out():
    inputs = torch.randn(24, 8, generator=torch.Generator().manual_seed(2))
    return [(inputs[:12], torch.arange(12) % 3), (inputs[12:], torch.arange(12) % 3)]


def make_trainer(tmp_path, callbacks=None, **overrides):
    transformers.set_seed(0)
    model = TinyEncoder()
    options = {"report_to": "none", "max_steps": 6, "eval_strategy": "steps", "eval_steps": 3, **overrides}
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        learning_rate=0.1,
        logging_steps=3,
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
        **options,
    )
    return transformers.Trainer(
        model=model,
        args=args,
        train_dataset=PairDataset(32, 1),
        eval_dataset=PairDataset(8, 3),
        callbacks=callbacks,
    )


def loss_steps(trainer):
    return [entry["step"] for entry in trainer.state.log_history if "loss" in entry]


def test_logged_values_equal_a_direct_computation_and_training_is_unchanged(tmp_path):
    trainer = make_trainer(tmp_path / "with")
    callback = HypersphereCallback(held_out(), views=noisy_views, every_n_steps=2).attach(trainer)
    trainer.train()
    # Steps 2 and 4 during training, the evaluations at steps 3 and 6; step 6 is due for both: measured once.
    assert [entry["step"] for entry in callback.history] == [2, 3, 4, 6]
    logged = [entry for entry in trainer.state.log_history if "hypersphere/alignment" in entry]
    assert [entry["step"] for entry in logged] == [2, 4]
    evaluated = [entry for entry in trainer.state.log_history if "eval_hypersphere/alignment" in entry]
    assert [entry["step"] for entry in evaluated] == [3, 6]
    direct = measure_pairs(trainer.model, held_out(), views=noisy_views)  # the final weights
    assert set(direct) >= {"alignment", "uniformity", "tolerance", "mean_classifier_acc", "effective_rank"}
    for key, value in direct.items():
        assert evaluated[-1][f"eval_hypersphere/{key}"] == value
        assert callback.history[-1][f"hypersphere/{key}"] == value
    evaluation = trainer.evaluate()
    assert evaluation["eval_hypersphere/uniformity"] == direct["uniformity"]
    assert logged[0]["hypersphere/uniformity"] != direct["uniformity"]  # it trained between the measurements

    plain = make_trainer(tmp_path / "without")
    plain.train()
    assert loss_steps(trainer) == loss_steps(plain) == [3, 6]  # the Trainer's own loss records are all there
    for mine, theirs in zip(trainer.model.parameters(), plain.model.parameters()):
        assert torch.equal(mine, theirs)  # same RNG draws and modes: the same training


def test_measuring_on_logging_steps_keeps_the_trainers_loss_log(tmp_path):
    trainer = make_trainer(tmp_path)
    callback = HypersphereCallback(held_out(), views=noisy_views, on_evaluate=False, every_n_steps=3).attach(trainer)
    trainer.train()
    assert loss_steps(trainer) == [3, 6]
    assert [entry["step"] for entry in callback.history] == [3, 6]
    assert [entry["step"] for entry in trainer.state.log_history if "hypersphere/alignment" in entry] == [3, 6]


def test_tensorboard_shows_training_and_evaluation_measurements_under_their_prefixes(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    trainer = make_trainer(tmp_path, report_to=["tensorboard"])
    HypersphereCallback(held_out(), views=noisy_views, every_n_steps=2).attach(trainer)
    trainer.train()
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    tags = events.Tags()["scalars"]
    assert [event.step for event in events.Scalars("train/hypersphere/alignment")] == [2, 4]
    assert [event.step for event in events.Scalars("eval/hypersphere/alignment")] == [3, 6]
    assert [event.step for event in events.Scalars("train/loss")] == [3, 6]
    assert "train/eval_hypersphere/alignment" not in tags


def test_passed_as_a_callback_it_logs_into_the_state(tmp_path):
    callback = HypersphereCallback(held_out(), views=noisy_views, on_evaluate=False, every_n_steps=3, prefix="h/")
    trainer = make_trainer(tmp_path, callbacks=[callback])
    trainer.train()
    assert [entry["step"] for entry in trainer.state.log_history if "h/alignment" in entry] == [3, 6]


def test_an_epoch_end_evaluation_reuses_the_measurement_of_its_step(tmp_path):
    trainer = make_trainer(tmp_path, eval_strategy="epoch", max_steps=8)  # 4 steps per epoch
    callback = HypersphereCallback(held_out(), views=noisy_views, every_n_steps=4).attach(trainer)
    trainer.train()
    assert [entry["step"] for entry in callback.history] == [4, 8]  # measured once per step
    history = trainer.state.log_history
    training = [entry for entry in history if "hypersphere/alignment" in entry]
    evaluated = [entry for entry in history if "eval_hypersphere/alignment" in entry]
    assert [entry["step"] for entry in training] == [entry["step"] for entry in evaluated] == [4, 8]
    assert evaluated[-1]["eval_hypersphere/uniformity"] == training[-1]["hypersphere/uniformity"]
    assert trainer.evaluate()["eval_hypersphere/uniformity"] == training[-1]["hypersphere/uniformity"]
