"""Why do small-τ contrastive runs end less uniform? Per-epoch diagnostics of the training dynamics.

A diagnostic study, not a benchmark: it times nothing (the seconds in a table's title are only there to plan a
longer run). It trains and prints; nothing in the package or the tests depends on it.

Usage:
    python tools/diag_small_tau.py                                   # τ = 0.07, 0.2, 0.5; 10 epochs; mnist5k
    python tools/diag_small_tau.py --taus 0.07 --epochs 40           # a longer run
    python tools/diag_small_tau.py --taus 0.07 --lr 0.042            # lr scaled by τ / 0.2
    python tools/diag_small_tau.py --taus 0.07 --warmup-epochs 5     # 5 epochs of linear warm-up (per step)
    python tools/diag_small_tau.py --taus 0.07,0.2 --seed 1 --measure-every 10
    python tools/diag_small_tau.py --json /tmp/diag.json             # also keep every number

Each run is the temperature study's (``aligniform study temperature``): convnet, batch 256, dim 128, SGD lr 0.12
(momentum 0.9, weight decay 1e-4), constant schedule unless ``--schedule`` says otherwise, warm-up by the config's
``warmup_epochs``, trained by the library's own :class:`~aligniform.train.Trainer` through its public entry points
only: the script builds it, calls ``fit()``, and observes the training with PyTorch's own hooks on the trainer's
``optimizer`` (step pre- and post-hooks: gradient norm, step sizes, and the end of each epoch, its last optimiser
step) and ``model`` (a forward hook on the output layer); the per-epoch loss, lr and k-NN accuracy come from
``trainer.metrics``. The measurements draw no random number from the training's streams, so the run trains
exactly as without them. At the end of every epoch (and once before training, epoch 0) the script measures, on
the 1,000 mnist5k test images, the uniformity L_uniform(t = 2) of the output layer the final evaluation reports,
four ways:

* ``U_eval`` -- eval mode, BatchNorm's running statistics: what ``results.json`` and the per-epoch monitoring
  measured before they recomputed the statistics (:func:`aligniform.evaluate.recomputed_batchnorm`);
* ``U_train`` -- train mode, each batch of 256 test images normalised by its own statistics (what training sees);
* ``U_recal`` -- eval mode after recomputing every BatchNorm's statistics exactly (cumulative average, current
  weights) on augmented training views, as training feeds them: the running averages' lag removed;
* ``U_clean`` -- eval mode with statistics recomputed on un-augmented training images: also the shift between
  augmented training inputs and clean test inputs removed.

and the dynamics: the mean loss, the gradient norm (whole model), the relative size of an SGD step
||Δw|| / ||w|| per stage (the effective learning rate of weights followed by BatchNorm or L2 normalisation, which
are scale-invariant), the weight norms, the mean norm of the output layer before L2 normalisation, the
uniformity of the L2-normalised ``hidden`` layer (is the head the bottleneck?), the output's effective rank, and
how far BatchNorm's running statistics are from the exact ones (``bn_shift``: max over layers and channels of
|running mean − exact mean| / exact std), ``U_cleanhead`` (only the head's BatchNorm recomputed on clean images)
and the backbone's 5-NN test accuracy with running (``knn_eval``) and clean (``knn_clean``) statistics.

The exact statistics here are computed independently of the library's
:func:`aligniform.evaluate.recomputed_batchnorm` (PyTorch's cumulative average, ``momentum=None``), as a check
of it. Findings: ``docs/training.md``, "Held-out metrics and BatchNorm statistics".
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from aligniform.augment import two_views
from aligniform.config import TrainConfig
from aligniform.evaluate import knn_accuracy
from aligniform.evaluate.features import extract_features, seeded_global_rng
from aligniform.metrics import effective_rank, uniformity
from aligniform.models.convnet import ConvNet
from aligniform.train import Trainer

STAGES = ("backbone", "hidden", "output")
COLUMNS = (
    ("epoch", "{:>5d}"),
    ("lr", "{:>6.3f}"),
    ("loss", "{:>7.3f}"),
    ("U_eval", "{:>7.3f}"),
    ("U_train", "{:>7.3f}"),
    ("U_recal", "{:>7.3f}"),
    ("U_clean", "{:>7.3f}"),
    ("U_hidden", "{:>8.3f}"),
    ("erank", "{:>6.1f}"),
    ("bn_shift", "{:>8.3f}"),
    ("grad", "{:>7.2f}"),
    ("step_bb", "{:>8.4f}"),
    ("step_hid", "{:>8.4f}"),
    ("step_out", "{:>8.4f}"),
    ("w_out", "{:>6.2f}"),
    ("prenorm", "{:>7.2f}"),
    ("knn_eval", "{:>8.3f}"),
    ("knn_clean", "{:>9.3f}"),
    ("U_cleanhead", "{:>11.3f}"),
)


def batchnorms(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def clone(model: nn.Module) -> nn.Module:
    """An independent copy of a ConvNet (weights and BatchNorm statistics), without the hooks."""
    with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave the training's RNG alone
        twin = ConvNet(dim=model.dim, in_channels=model.in_channels, image_size=model.image_size)
    twin.load_state_dict(model.state_dict())
    return twin


def recalibrated(model: nn.Module, batches, only: str = "") -> nn.Module:
    """A copy whose BatchNorm statistics (under stage ``only``; default all) are exact averages over ``batches``."""
    copy_ = clone(model)
    for name, bn in batchnorms(copy_):
        if not name.startswith(f"stages.{only}"):
            continue
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average: the exact mean over the batches
    copy_.train()
    with torch.no_grad():
        for batch in batches:
            copy_(batch)
    return copy_.eval()


def bn_shift(model: nn.Module, exact: nn.Module) -> float:
    """The largest, over BatchNorm layers and channels, of |running mean - exact mean| / exact std."""
    worst = 0.0
    for (_, bn), (_, ref) in zip(batchnorms(model), batchnorms(exact), strict=True):
        shift = (bn.running_mean - ref.running_mean).abs() / ref.running_var.clamp_min(1e-12).sqrt()
        worst = max(worst, float(shift.max()))
    return worst


class Diagnostics:
    """Per-step dynamics and per-epoch uniformity (four ways) of a :class:`Trainer`, observed through hooks."""

    def __init__(self, trainer: Trainer, measure_every: int = 1) -> None:
        self.trainer = trainer
        self.measure_every = measure_every
        # One process: every epoch takes the same number of optimiser steps (the trainer drops the last partial
        # batch), so an epoch ends at its last step, before the trainer's own validation of that epoch.
        self.steps_per_epoch = len(trainer.data.train) // trainer.local_batch_size
        self.records: list[dict] = []
        self._grad_sq: list[float] = []
        self._steps: dict[str, list[float]] = defaultdict(list)
        self._before: dict[str, torch.Tensor] = {}
        self._prenorm: list[float] = []
        self._record_prenorm_on = False
        self._step_count = 0
        trainer.optimizer.register_step_pre_hook(self._pre_step)
        trainer.optimizer.register_step_post_hook(self._post_step)
        trainer.model.stages["output"][0].register_forward_hook(self._record_prenorm)

    def _stage_vector(self, stage: str) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in self.trainer.model.stages[stage].parameters()])

    def _pre_step(self, optimizer, args, kwargs) -> None:
        grads = [p.grad.detach().flatten() for p in self.trainer.model.parameters() if p.grad is not None]
        self._grad_sq.append(float(torch.cat(grads).pow(2).sum()))
        self._before = {stage: self._stage_vector(stage).clone() for stage in STAGES}

    def _post_step(self, optimizer, args, kwargs) -> None:
        self._step_count += 1
        for stage in STAGES:
            before = self._before[stage]
            self._steps[stage].append(float((self._stage_vector(stage) - before).norm() / before.norm()))
        if self._step_count % self.steps_per_epoch == 0:
            epoch = self._step_count // self.steps_per_epoch
            if epoch % self.measure_every == 0 or epoch == self.trainer.config.epochs:
                self.records.append(self.measure(epoch))

    def _record_prenorm(self, module, inputs, output) -> None:
        if self._record_prenorm_on:
            self._prenorm.append(float(output.detach().norm(dim=1).mean()))

    @torch.no_grad()
    def measure(self, epoch: int) -> dict:
        trainer = self.trainer
        data, model, eval_transform = trainer.data, trainer.model, trainer.eval_transform
        test = data.test.images
        record: dict[str, float] = {"epoch": epoch}
        record["lr"] = trainer.optimizer.param_groups[0]["lr"]
        record["loss"] = math.nan
        self._record_prenorm_on = True
        self._prenorm.clear()
        feats = extract_features(model, test, eval_transform, ["hidden", "output"], device=trainer.device)
        self._record_prenorm_on = False
        record["prenorm"] = sum(self._prenorm) / len(self._prenorm)
        record["U_eval"] = uniformity(feats["output"])
        record["U_hidden"] = uniformity(F.normalize(feats["hidden"], dim=1))
        record["erank"] = effective_rank(feats["output"])
        # Train mode: every batch of 256 test images normalised by its own statistics (a copy: no stats update).
        train_mode = clone(model).train()
        z = torch.cat([train_mode(eval_transform(b)) for b in test.split(256)])
        record["U_train"] = uniformity(z)
        # Exact statistics on augmented training views (both views of each batch, as a training step feeds them).
        train_images = data.train.images
        with seeded_global_rng(2024):
            views = [torch.cat(two_views(trainer.augmentation, b)) for b in train_images.split(256)]
        exact = recalibrated(model, views)
        record["U_recal"] = uniformity(extract_features(exact, test, eval_transform, ["output"])["output"])
        record["bn_shift"] = bn_shift(model, exact)
        clean = recalibrated(model, [eval_transform(b) for b in train_images.split(256)])
        clean_feats = extract_features(clean, test, eval_transform, ["backbone", "output"])
        record["U_clean"] = uniformity(clean_feats["output"])
        head = recalibrated(model, [eval_transform(b) for b in train_images.split(256)], only="hidden")
        record["U_cleanhead"] = uniformity(extract_features(head, test, eval_transform, ["output"])["output"])
        # 5-NN on the backbone (test against the labelled training split), running vs clean statistics.
        bank = data.labelled_train
        for key, net, test_backbone in (
            ("knn_eval", model, None),
            ("knn_clean", clean, clean_feats["backbone"]),
        ):
            bank_z = extract_features(net, bank.images, eval_transform, ["backbone"])["backbone"]
            if test_backbone is None:
                test_backbone = extract_features(net, test, eval_transform, ["backbone"])["backbone"]
            record[key] = knn_accuracy(bank_z, bank.labels, test_backbone, data.test.labels, k=5)
        # Dynamics of the epoch just finished.
        steps = len(self._grad_sq)
        record["grad"] = math.sqrt(sum(self._grad_sq) / steps) if steps else math.nan
        for stage, short in zip(STAGES, ("bb", "hid", "out"), strict=True):
            values = self._steps[stage]
            record[f"step_{short}"] = sum(values) / len(values) if values else math.nan
        record["w_out"] = float(model.stages["output"][0].weight.detach().norm())
        record["w_hidden"] = float(model.stages["hidden"][0].weight.detach().norm())
        record["knn"] = math.nan
        self._grad_sq.clear()
        self._steps.clear()
        return record


def train_one(tau: float, args: argparse.Namespace, folder: Path) -> list[dict]:
    config = TrainConfig(
        dataset=args.dataset,
        model="convnet",
        objective=f"contrastive(tau={tau:g})" if not args.objective else args.objective,
        epochs=args.epochs,
        batch_size=256,
        lr=args.lr,
        schedule=args.schedule,
        warmup_epochs=args.warmup_epochs,
        dim=128,
        seed=args.seed,
        device="cpu",
        out=str(folder / f"tau{tau:g}"),
        progress=False,
        linear_probe="none",
    )
    with Trainer(config) as trainer:
        diagnostics = Diagnostics(trainer, args.measure_every)
        diagnostics.records.append(diagnostics.measure(0))  # epoch 0: the initial encoder
        trainer.fit()
    logged = {record["epoch"]: record for record in trainer.metrics}
    for record in diagnostics.records[1:]:
        for key, name in (("loss", "loss"), ("lr", "lr"), ("knn", "knn_acc")):
            record[key] = logged[record["epoch"]].get(name, math.nan)
    return diagnostics.records


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(" ".join(f"{name:>{len(fmt.format(0 if 'd' in fmt else 0.0))}}" for name, fmt in COLUMNS))
    for row in rows:
        cells = []
        for name, fmt in COLUMNS:
            value = row.get(name, math.nan)
            cells.append(fmt.format(int(value)) if "d" in fmt else fmt.format(value))
        print(" ".join(cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--taus", default="0.07,0.2,0.5")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.12)
    parser.add_argument("--schedule", default="constant", choices=("constant", "cosine"))
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--objective", default="", help="another objective instead of contrastive(tau)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--measure-every", type=int, default=1, help="measure every this many epochs (last always)")
    parser.add_argument("--warmup-epochs", type=int, default=0, help="linear lr warm-up (per step) over these epochs")
    parser.add_argument("--json", default="", help="write every number here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    taus = [float(t) for t in args.taus.split(",")]
    everything = {}
    with tempfile.TemporaryDirectory() as folder:
        for tau in taus:
            started = time.perf_counter()
            rows = train_one(tau, args, Path(folder))
            shown = rows
            label = args.objective or f"contrastive(tau={tau:g})"
            print_table(
                f"{label}, lr {args.lr:g} ({args.schedule}, warm-up {args.warmup_epochs} epochs), {args.epochs} epochs"
                f" on {args.dataset}, seed {args.seed}"
                f" [{time.perf_counter() - started:.0f} s]",
                shown,
            )
            everything[label] = rows
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": everything}, indent=1))


if __name__ == "__main__":
    main()
