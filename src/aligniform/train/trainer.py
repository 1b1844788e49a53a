"""The training loop: two views → encoder → objective, with exact resume and per-epoch evaluation."""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from .._validation import input_checks
from ..augment import two_views
from ..build import build_encoder, build_optimizer, build_transforms, input_size, load_training_data
from ..config import TrainConfig
from ..distributed import (
    DistributedContext,
    barrier,
    convert_sync_batchnorm,
    gather_pairs,
    init_distributed,
    seed_worker,
    shard_indices,
    wrap_ddp,
)
from ..evaluate import embed_view_pairs, extract_features, knn_accuracy
from ..metrics import alignment, uniformity
from ..models import resolve_eval_layer
from ..objective import Objective
from .checkpoint import ModelInfo, load_checkpoint, rng_state, save_atomic, set_rng_state
from .moco import FeatureQueue, MomentumEncoder
from .run_log import RunLog
from .schedule import build_scheduler

VALIDATION_SEED = 12345  # fixed views for the held-out metrics, so epochs are comparable


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class Trainer:
    """Trains one encoder as a :class:`TrainConfig` describes, writing into ``config.out``.

    Files: ``config.yaml`` (resolved config), ``metrics.jsonl`` (per epoch),
    ``checkpoint.pt`` (last epoch), ``best.pt`` (best held-out 5-NN accuracy),
    ``tensorboard/``; :func:`aligniform.train.run` adds ``results.json``.
    Under ``torchrun`` every rank trains on its shard of each global batch, the
    losses see the gathered global batch, and only rank 0 writes.

    Examples:
        >>> from aligniform.config import TrainConfig
        >>> from aligniform.train import Trainer
        >>> trainer = Trainer(TrainConfig(dataset="digits", epochs=1, out="/tmp/aligniform-doc"))  # doctest: +SKIP
        >>> trainer.fit()  # doctest: +SKIP
    """

    def __init__(self, config: TrainConfig, context: DistributedContext | None = None):
        self.config = config
        self.context = context or init_distributed(config.device)
        self.device = self.context.device
        self.out = Path(config.out)
        seed_worker(config.seed, self.context.rank)  # rank 0 keeps the seed; others get derived ones
        self.data = load_training_data(config)
        self.augmentation, self.eval_transform = build_transforms(config, self.data.train)
        self.train_images = self._images_on_device(self.data.train.images)
        self.model = build_encoder(config, self.data.train).to(self.device)
        if config.sync_bn:
            self.model = convert_sync_batchnorm(self.model, self.context)
        self.objective = Objective.parse(config.objective)
        self.optimizer = build_optimizer(config, self.model)
        self.scheduler = build_scheduler(
            self.optimizer, config.schedule, config.epochs, config.milestones, config.lr_decay
        )
        self.network = wrap_ddp(self.model, self.context)  # DDP broadcasts rank 0's initial weights here
        self.key_encoder = MomentumEncoder(self.model, config.moco_momentum) if config.moco else None
        self.queue = (
            FeatureQueue(config.queue_size, config.dim, torch.Generator().manual_seed(config.seed)).to(self.device)
            if config.moco
            else None
        )
        self.epoch = 0  # epochs completed
        self.best_knn = -math.inf
        self.log: RunLog | None = None

    # ------------------------------------------------------------------ setup

    def _images_on_device(self, images: torch.Tensor) -> torch.Tensor:
        """On a GPU, keep the uint8 training images there (up to 4 GiB): no host-to-device copy per step."""
        if self.device.type == "cuda" and images.numel() <= 4 * 2**30:
            return images.to(self.device)
        return images

    @property
    def local_batch_size(self) -> int:
        world = self.context.world_size
        if self.config.batch_size % world:
            raise ValueError(
                f"batch_size {self.config.batch_size} must be divisible by the number of processes ({world})"
            )
        return self.config.batch_size // world

    def _autocast(self):
        if self.config.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.config.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    # ------------------------------------------------------------------ state

    def _rng_states(self) -> list:
        """Every rank's RNG state (a collective under torchrun): each rank draws its own augmentations."""
        state = rng_state()
        if not self.context.is_distributed:
            return [state]
        states = [None] * self.context.world_size
        dist.all_gather_object(states, state)
        return states

    def state_dict(self, rng_states: list | None = None) -> dict:
        return {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "best_knn": self.best_knn,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "key_encoder": None if self.key_encoder is None else self.key_encoder.state_dict(),
            "queue": None if self.queue is None else self.queue.state_dict(),
            "rng": rng_states if rng_states is not None else self._rng_states(),
            "model_info": self.model_info.to_dict(),
        }

    @property
    def model_info(self) -> ModelInfo:
        """The description a checkpoint needs to rebuild this run's encoder."""
        return ModelInfo(
            name=self.config.model,
            dim=self.config.dim,
            in_channels=self.data.train.channels,
            image_size=input_size(self.config, self.data.train),
            dataset=self.config.dataset,
        )

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.key_encoder is not None:
            self.key_encoder.load_state_dict(state["key_encoder"])
            self.queue.load_state_dict(state["queue"])
        self.epoch, self.best_knn = state["epoch"], state["best_knn"]
        if len(state["rng"]) != self.context.world_size:
            raise ValueError(
                f"the checkpoint was written by {len(state['rng'])} process(es); resume it with the same number "
                f"of processes (now {self.context.world_size}) so every random stream continues exactly"
            )
        set_rng_state(state["rng"][self.context.rank])

    # ------------------------------------------------------------------ training

    def fit(self, resume: bool = False) -> None:
        """Train for ``config.epochs`` epochs (continuing from ``checkpoint.pt`` when ``resume``)."""
        if self.context.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            # On the CPU: RNG states must stay CPU byte tensors; load_state_dict copies the rest to the device.
            self.load_state_dict(load_checkpoint(self.out / "checkpoint.pt", map_location="cpu"))
        if self.context.is_main:
            self.config.to_yaml(self.out / "config.yaml")
            self.log = RunLog(self.out)
            self.log.truncate_after(self.epoch)
        try:
            while self.epoch < self.config.epochs:
                self._train_epoch()
        finally:
            if self.log is not None:
                self.log.close()

    def _train_epoch(self) -> None:
        epoch = self.epoch + 1
        started = time.perf_counter()
        self.network.train()
        indices = shard_indices(
            len(self.data.train), self.context.rank, self.context.world_size, self.config.seed, epoch
        )
        steps = len(indices) // self.local_batch_size
        if steps == 0:
            raise ValueError(
                f"batch_size {self.config.batch_size} is larger than the training set ({len(self.data.train)} images)"
            )
        totals: dict[str, float] = {}
        bar = tqdm(
            range(steps),
            desc=f"epoch {epoch}/{self.config.epochs}",
            leave=False,
            disable=not (self.config.progress and self.context.is_main),
        )
        for step in bar:
            batch = indices[step * self.local_batch_size : (step + 1) * self.local_batch_size]
            images = self.train_images[batch.to(self.train_images.device)]
            terms = self._train_step(images.to(self.device, non_blocking=True), epoch, step + 1)
            for key, value in terms.items():
                totals[key] = totals.get(key, 0.0) + value
            bar.set_postfix({k: f"{v:.3f}" for k, v in terms.items()})
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        self.epoch = epoch
        record = {"epoch": epoch, **{k: v / steps for k, v in totals.items()}, "lr": lr}
        record.update(self.validate())
        record["seconds"] = time.perf_counter() - started
        self._end_epoch(record)

    def _train_step(self, images: torch.Tensor, epoch: int, step: int) -> dict[str, float]:
        with torch.no_grad():
            view1, view2 = two_views(self.augmentation, images)
        with self._autocast():
            if self.key_encoder is None:
                x, y = self.network(torch.cat([view1, view2])).chunk(2)  # one pass, as the authors do
            else:
                x, y = self.network(view1), self.key_encoder(view2)
        if self.config.precision != "fp32":
            # A bf16 unit vector's norm is only accurate to ~4e-3; the losses want float32 on the sphere.
            x, y = F.normalize(x.float(), dim=1), F.normalize(y.float(), dim=1)
        queue = None if self.queue is None else self.queue.features.clone()
        if self.context.is_distributed:
            x, y = gather_pairs(x, y)
        # The encoder ends in L2 normalisation, so the per-call value checks would only cost a
        # GPU sync per step; a diverged encoder shows up as a non-finite loss just below.
        with input_checks(False):
            loss = self.objective(x, y, queue=queue, moco=self.key_encoder is not None)
        if not torch.isfinite(loss):
            raise TrainingDiverged(self._divergence_message(epoch, step))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.key_encoder is not None:
            self.key_encoder.update(self.model)
            self.queue.push(y.detach())
        return {"loss": float(loss.detach()), **self.objective.last_terms}

    def _divergence_message(self, epoch: int, step: int) -> str:
        terms = ", ".join(f"{k}={v:.4g}" for k, v in self.objective.last_terms.items())
        kept = (
            f"the last good checkpoint (end of epoch {self.epoch}) is kept at {self.out / 'checkpoint.pt'}"
            if self.epoch > 0
            else "no checkpoint was written yet"
        )
        return (
            f"the loss became NaN/inf at epoch {epoch}, step {step} ({terms}); {kept}. "
            f"Try a lower --lr, fp32 precision, or a different objective weighting."
        )

    def _end_epoch(self, record: dict) -> None:
        rng_states = self._rng_states()
        if self.context.is_main:
            improved = record.get("knn_acc", -math.inf) > self.best_knn
            if improved:
                self.best_knn = record["knn_acc"]
            state = self.state_dict(rng_states)
            save_atomic(state, self.out / "checkpoint.pt")
            if improved:
                save_atomic(state, self.out / "best.pt")
            self.log.write(record)
            if self.config.progress:
                shown = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in ("epoch",))
                tqdm.write(f"epoch {record['epoch']}/{self.config.epochs}: {shown}")
        barrier()

    # ------------------------------------------------------------------ monitoring

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Held-out metrics: 5-NN accuracy of val against bank; alignment and uniformity of val pairs."""
        if not self.context.is_main:
            return {}
        layer = resolve_eval_layer(self.model, self.config.eval_layer)
        bank = extract_features(self.model, self.data.bank.images, self.eval_transform, [layer], device=self.device)
        val = extract_features(self.model, self.data.val.images, self.eval_transform, [layer], device=self.device)
        knn = knn_accuracy(bank[layer], self.data.bank.labels, val[layer], self.data.val.labels, k=self.config.knn_k)
        # Fixed views (same every epoch, so epochs compare); the training RNG stream is left as it was.
        x, y = embed_view_pairs(
            self.model, self.data.val.images, self.augmentation, seed=VALIDATION_SEED, device=self.device
        )
        return {
            "val_alignment": alignment(x, y),
            "val_uniformity": uniformity(x, max_pairs=500_000),
            "knn_acc": knn,
        }
