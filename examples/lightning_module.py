"""A Lightning module trained with an aligniform objective, watched by `HypersphereMonitor`.

The module's loss is any aligniform objective string; the callback embeds two views of held-out inputs
at the start and after every epoch and logs alignment, uniformity, ... to the Lightning logger
(here a CSV file) and to `monitor.history`.

    python examples/lightning_module.py         # a few seconds on a CPU
"""

import lightning
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger

from aligniform import Objective
from aligniform.integrations.lightning import HypersphereMonitor


def two_views(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return inputs + 0.3 * torch.randn_like(inputs), inputs + 0.3 * torch.randn_like(inputs)


class ContrastiveEncoder(lightning.LightningModule):
    """An MLP on the unit sphere, trained on two views of each input with an aligniform objective."""

    def __init__(self, objective: str = "align(alpha=2) + uniform(t=2)", lr: float = 0.5):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
        self.objective = Objective.parse(objective)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(inputs), dim=1)

    def training_step(self, batch, batch_idx):
        first, second = two_views(batch[0])
        loss = self.objective(self(first), self(second))
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def main(epochs: int = 4) -> list[dict]:
    lightning.seed_everything(0, verbose=False)
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(512, 16)), batch_size=64)
    held_out = [(torch.randn(128, 16), torch.randint(0, 4, (128,))) for _ in range(2)]  # (inputs, labels)
    monitor = HypersphereMonitor(held_out, views=two_views, every_n_epochs=1, at_start=True)
    trainer = lightning.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        callbacks=[monitor],
        logger=CSVLogger("lightning_logs_example"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(ContrastiveEncoder(), train)
    for entry in monitor.history:
        print(
            f"epoch {entry['epoch']}: alignment {entry['hypersphere/alignment']:.3f}  "
            f"uniformity {entry['hypersphere/uniformity']:.3f}"
        )
    return monitor.history


if __name__ == "__main__":
    history = main()
    assert len(history) == 5  # at the start and after each of the 4 epochs
    assert history[-1]["hypersphere/uniformity"] < history[0]["hypersphere/uniformity"]
