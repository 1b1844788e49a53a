"""HypersphereMonitor in a real lightning.Trainer run on the CPU: logged values, untouched training."""

import csv
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

lightning = pytest.importorskip("lightning", reason="lightning is not installed (extra: integrations)")

from lightning.pytorch.loggers import CSVLogger  # noqa: E402

from aligniform import Objective  # noqa: E402
from aligniform.integrations import measure_pairs  # noqa: E402
from aligniform.integrations.lightning import HypersphereMonitor  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")


class TinyEncoder(lightning.LightningModule):
    """Two noisy views of each input, a dropout MLP, align + uniform: RNG use in training and in the views."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4))
        self.objective = Objective.parse("align(alpha=2) + uniform(t=2)")

    def forward(self, x):
        return F.normalize(self.net(x), dim=1)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        first, second = noisy_views(x)
        return self.objective(self(first), self(second))

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        first, second = noisy_views(x)
        self.log("val_loss", self.objective(self(first), self(second)))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def noisy_views(x):
    return x + 0.3 * torch.randn_like(x), x + 0.3 * torch.randn_like(x)


def train_loader():
    inputs = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs), batch_size=8, shuffle=True)


def held_out():
    inputs = torch.randn(24, 8, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(24) % 3
    return [(inputs[:12], labels[:12]), (inputs[12:], labels[12:])]


def fit(tmp_path, callbacks, val=None, **trainer_options):
    lightning.seed_everything(0, verbose=False)
    module = TinyEncoder()
    options = {"enable_checkpointing": False, "max_epochs": 2, **trainer_options}
    trainer = lightning.Trainer(
        accelerator="cpu",
        devices=1,
        callbacks=callbacks,
        logger=CSVLogger(tmp_path, name="run"),
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        **options,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, train_loader(), val)
    return module, trainer


def logged_rows(trainer):
    with open(f"{trainer.logger.log_dir}/metrics.csv") as file:
        return [row for row in csv.DictReader(file) if row.get("hypersphere/alignment")]


def test_logged_values_equal_a_direct_computation_and_training_is_unchanged(tmp_path):
    monitor = HypersphereMonitor(held_out(), views=noisy_views, every_n_epochs=1, at_start=True)
    module, trainer = fit(tmp_path / "with", [monitor])
    assert [(entry["epoch"], entry["step"]) for entry in monitor.history] == [(0, 0), (0, 4), (1, 8)]
    rows = logged_rows(trainer)
    # At the start (step 0), then at each epoch's end, which Lightning's loggers record at the epoch's last step.
    assert [int(row["step"]) for row in rows] == [0, 3, 7]
    direct = measure_pairs(module, held_out(), views=noisy_views)  # the final weights: the last measurement
    assert set(direct) >= {"alignment", "uniformity", "tolerance", "mean_classifier_acc", "effective_rank"}
    for key, value in direct.items():
        assert monitor.history[-1][f"hypersphere/{key}"] == value
        assert float(rows[-1][f"hypersphere/{key}"]) == pytest.approx(value, rel=1e-12)
    assert float(trainer.callback_metrics["hypersphere/uniformity"]) == pytest.approx(direct["uniformity"], rel=1e-6)
    assert monitor.history[0]["hypersphere/uniformity"] != monitor.history[-1]["hypersphere/uniformity"]  # trained
    assert module.training  # the mode Lightning left it in after fit, unchanged by the measurements

    plain, _ = fit(tmp_path / "without", [])
    for mine, theirs in zip(module.parameters(), plain.parameters()):
        assert torch.equal(mine, theirs)  # same RNG draws and modes: the same training


def test_every_n_steps(tmp_path):
    monitor = HypersphereMonitor(held_out(), views=noisy_views, every_n_epochs=None, every_n_steps=3, prefix="h/")
    _, trainer = fit(tmp_path, [monitor])
    assert [entry["step"] for entry in monitor.history] == [3, 6]
    assert "h/alignment" in trainer.callback_metrics


def test_bad_options():
    with pytest.raises(ValueError, match="every_n_steps"):
        HypersphereMonitor([], every_n_steps=0)
    # Found at construction, not at the first measurement mid-training.
    with pytest.raises(TypeError, match=r"`views` must be a function inputs -> \(x_view, y_view\), or None, got int 5"):
        HypersphereMonitor([], views=5)
    with pytest.raises(TypeError, match="`embed` must be a function"):
        HypersphereMonitor([], embed="mean")


def val_loader():
    inputs = torch.randn(16, 8, generator=torch.Generator().manual_seed(3))
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs), batch_size=8)


def test_validation_measures_once_per_step_and_feeds_checkpoint_and_early_stopping(tmp_path):
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    monitor = HypersphereMonitor(held_out(), views=noisy_views, every_n_epochs=1, prog_bar=True)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "checkpoints", monitor="val_hypersphere/alignment", mode="min")
    stopping = EarlyStopping(monitor="hypersphere/uniformity", mode="min", patience=5)
    module, trainer = fit(
        tmp_path, [monitor, checkpoint, stopping], val=val_loader(), enable_checkpointing=True, num_sanity_val_steps=2
    )
    # The validation at each epoch's end and the epoch end itself see the same weights: one measurement each epoch.
    assert [(entry["epoch"], entry["step"]) for entry in monitor.history] == [(0, 4), (1, 8)]
    direct = measure_pairs(module, held_out(), views=noisy_views)
    for key, value in direct.items():
        assert float(trainer.callback_metrics[f"val_hypersphere/{key}"]) == value
        assert float(trainer.callback_metrics[f"hypersphere/{key}"]) == value
    assert float(trainer.progress_bar_metrics["val_hypersphere/alignment"]) == pytest.approx(direct["alignment"])
    assert float(checkpoint.best_model_score) == min(entry["hypersphere/alignment"] for entry in monitor.history)
    assert float(stopping.best_score) == min(entry["hypersphere/uniformity"] for entry in monitor.history)
    rows = [row for row in logged_rows_of(trainer, "val_hypersphere/alignment")]
    assert [int(row["epoch"]) for row in rows] == [0, 1]


def test_trainer_validate_measures(tmp_path):
    monitor = HypersphereMonitor(held_out(), views=noisy_views)
    lightning.seed_everything(0, verbose=False)
    module = TinyEncoder()
    trainer = lightning.Trainer(
        accelerator="cpu",
        devices=1,
        callbacks=[monitor],
        logger=CSVLogger(tmp_path, name="run"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        (results,) = trainer.validate(module, val_loader(), verbose=False)
    assert len(monitor.history) == 1
    direct = measure_pairs(module, held_out(), views=noisy_views)
    assert results["val_hypersphere/uniformity"] == pytest.approx(direct["uniformity"], rel=1e-12)


def test_a_loader_of_inputs_and_labels_without_views_is_one_clear_error(tmp_path):
    inputs, labels = torch.randn(16, 8), torch.arange(16) % 2
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, labels), batch_size=8)
    with pytest.raises(ValueError, match=r"looks like \(inputs, labels\).*`views`"):
        fit(tmp_path, [HypersphereMonitor(loader, at_start=True)])


def logged_rows_of(trainer, key):
    with open(f"{trainer.logger.log_dir}/metrics.csv") as file:
        return [row for row in csv.DictReader(file) if row.get(key)]
