"""One small training run with a hypersphere callback, launched by torchrun with 1 or 2 CPU processes (gloo).

``python -m torch.distributed.run --standalone --nproc_per_node N distributed_run.py FRAMEWORK OUT.json``:
FRAMEWORK is ``lightning`` or ``transformers``. Every step trains on the whole 16-row training set (each of the N
processes on 16/N rows) with the alignment loss, a mean over rows, so DDP's averaged gradient is the one-process
gradient and the runs train the same weights; rank 0 writes what was logged to OUT.json for the test to compare.
"""

import json
import os
import sys
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from aligniform import Objective

ROWS = 16


def pairs(n, seed):
    inputs = torch.randn(n, 8, generator=torch.Generator().manual_seed(seed))
    noise = torch.randn(2, n, 8, generator=torch.Generator().manual_seed(seed + 1))
    return inputs + 0.3 * noise[0], inputs + 0.3 * noise[1]


def held_out():
    first, second = pairs(24, 5)
    labels = torch.arange(24) % 3
    return [(first[:12], second[:12], labels[:12]), (first[12:], second[12:], labels[12:])]


def network():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def run_lightning(world, out):
    import lightning
    from lightning.pytorch.loggers import CSVLogger

    from aligniform.integrations.lightning import HypersphereMonitor

    class Encoder(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.net, self.objective = network(), Objective.parse("align(alpha=2)")

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return self.objective(F.normalize(self(x), dim=1), F.normalize(self(y), dim=1))

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", self.training_step(batch, batch_idx), sync_dist=True)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.5)

    def loader(seed, rows):
        dataset = torch.utils.data.TensorDataset(*pairs(rows, seed))
        return torch.utils.data.DataLoader(dataset, batch_size=rows // world)

    monitor = HypersphereMonitor(held_out(), every_n_epochs=1, every_n_steps=1)
    trainer = lightning.Trainer(
        accelerator="cpu",
        devices=world,
        strategy="ddp" if world > 1 else "auto",
        max_epochs=3,
        callbacks=[monitor],
        logger=CSVLogger(os.path.dirname(out), name=f"lightning_{world}"),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
    )
    trainer.fit(Encoder(), loader(1, ROWS), loader(3, 8))
    if trainer.global_rank == 0:
        logged = {key: float(value) for key, value in trainer.callback_metrics.items()}
        write(out, {"history": monitor.history, "callback_metrics": logged})


def run_transformers(world, out):
    import transformers

    from aligniform.integrations.transformers import HypersphereCallback

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.objective = network(), Objective.parse("align(alpha=2)")

        def forward(self, x_view, y_view=None):
            x = F.normalize(self.net(x_view), dim=1)
            if y_view is None:
                return {"embeddings": x}
            return {"loss": self.objective(x, F.normalize(self.net(y_view), dim=1))}

    class Pairs(torch.utils.data.Dataset):
        def __init__(self, rows, seed):
            self.first, self.second = pairs(rows, seed)

        def __len__(self):
            return len(self.first)

        def __getitem__(self, index):
            return {"x_view": self.first[index], "y_view": self.second[index]}

    args = transformers.TrainingArguments(
        output_dir=os.path.join(os.path.dirname(out), f"transformers_{world}"),
        max_steps=4,
        per_device_train_batch_size=ROWS // world,
        per_device_eval_batch_size=8 // world,
        learning_rate=0.5,
        lr_scheduler_type="constant",
        eval_strategy="steps",
        eval_steps=2,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
        ddp_backend="gloo" if world > 1 else None,
    )
    trainer = transformers.Trainer(model=Encoder(), args=args, train_dataset=Pairs(ROWS, 1), eval_dataset=Pairs(8, 3))
    callback = HypersphereCallback(held_out(), every_n_steps=1).attach(trainer)
    trainer.train()
    if trainer.is_world_process_zero():
        write(out, {"history": callback.history, "log_history": trainer.state.log_history})


def write(out, result):
    with open(out, "w", encoding="utf-8") as file:
        json.dump(result, file)


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    framework, out = sys.argv[1], sys.argv[2]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    {"lightning": run_lightning, "transformers": run_transformers}[framework](world, out)
